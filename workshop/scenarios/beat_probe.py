"""A settings layer that lab 04's checks put after the lab's own (see `beat_restart.probe_layers`):
one more periodic entry, `probe`, whose period the check knows and controls, so that a check can
restart every beat between two of its runs in seconds instead of waiting for a crontab minute.

cms.settings imports each layer in turn while it is itself being imported, and copies the
layer's UPPERCASE names into its own: the schedule the layers before this one built is already
there, and this layer adds to it. Whatever scheduler the Procfile runs (every beat, a worker's
embedded beat) schedules this entry like any other.
"""

import sys

entry = "probe"
seconds = 4  # the period: long enough to restart both beats between two runs, short enough to wait for

_cms = sys.modules.get("cms.settings")
CELERY_BEAT_SCHEDULE = {
    **(getattr(_cms, "CELERY_BEAT_SCHEDULE", None) or {}),
    entry: {"task": "cms.signage.tasks.record_tick", "schedule": float(seconds), "args": (entry,)},
}
