"""Regression check: lab 03's guarantee, re-checked in this lab's cluster.

Lab 03 made a worker lose no task when a pool child dies. This lab's worker runs the
worker line of this lab's Procfile, with this lab's settings (beat_settings.py) loaded
after lab 03's celery_settings: a child is SIGKILLed in the middle of a render and the
task must still succeed, on another child.

What it catches, honestly: a worker line edited in this lab's Procfile, or a setting in
beat_settings.py that turns acks_late or reject_on_worker_lost off again, breaks it
here. It also catches a broken layer stack (the curriculum tests prove it by running
it on lab 03's starter). It cannot catch a change to your lab 03 files: every lab runs
on the earlier labs' solutions.
"""

from workshop.celery_client import celery_client
from workshop.scenarios.celery_task_loss import assert_kill_loses_no_task

CLUSTER_OPTIONS = {"nodes": 0, "procfile_processes": ("worker",)}  # no beats: only the worker matters here


def test_a_killed_child_still_loses_no_task(cluster, setting, failure):
    assert_kill_loses_no_task(celery_client(cluster.redis.url), setting, failure, lab="03")
