"""`workshop top`: a live view of a running topology (the talk's first lesson: measure).

running.py   the description a running Cluster writes of itself, and how top finds it
collect.py   one snapshot of real numbers: uWSGI stats, psutil, Celery inspect, Redis, nginx
render.py    the snapshot as rich tables
view.py      the command: one snapshot (--once, --json) or a live view
"""
