"""`workshop top`: a live view of a running topology (the talk's first lesson: measure).

snapshot.py  one snapshot of a running topology, as data (and as `--json` writes it)
sources.py   its real numbers: uWSGI stats, psutil, Redis, nginx, a rehearsal's pods
collect.py   the collector: one snapshot per refresh, with Celery inspect, time-boxed
render.py    the snapshot as rich tables
view.py      the command: one snapshot (--once, --json) or a live view

The description a running lab writes of itself, and how top finds it, are workshop.runs.
"""
