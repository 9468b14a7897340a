"""Regression check: lab 02's guarantee, re-checked in this lab's cluster.

Lab 02 made sessions survive any node. This lab's cluster runs the web line of this
lab's Procfile on top of lab 02's solution: a logged-in user browses over every worker
of two nodes and must stay logged in.

What it catches, honestly: this lab's files are the Procfile (its web line starts the
nodes) and celery_settings.py (a settings module loaded over cms.settings, after lab
02's). A web line or a setting that drops the shared session store (a CACHES or
SESSION_ENGINE of its own) breaks the guarantee here. It also catches a broken layer
stack (the curriculum tests prove it by running it on lab 02's starter). It cannot
catch a change to your lab 02 files: every lab runs on the earlier labs' solutions.
"""

from workshop.scenarios.sessions import assert_logged_in_everywhere

CLUSTER_OPTIONS = {"nodes": 2, "procfile_processes": ()}  # web nodes only: the worker is not needed


def test_sessions_still_survive_every_node(cluster, client, setting, failure):
    assert_logged_in_everywhere(client, cluster, failure, setting, minimum=20, lab="02")
