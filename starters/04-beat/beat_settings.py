"""The periodic tasks of cms, and how beat keeps their schedule. The workshop loads
this module into cms.settings (its UPPERCASE names override cms's).

This is Celery's default: beat's PersistentScheduler keeps the schedule's state (when
each entry last ran) in a `shelve` file, `celerybeat-schedule`, in its working
directory: the local disk of whatever node runs it. Every replica that starts a beat
has its own file and sends every task itself.
"""

import os

from celery.schedules import crontab

# The workshop's Valkey/Redis, shared by every node: redis://127.0.0.1:PORT/0
REDIS_URL = os.environ.get("REDIS_URL", "")

CELERY_BEAT_SCHEDULE = {
    # The lab's fast task: records when it ran and which beat sent it.
    "tick": {"task": "cms.signage.tasks.record_tick", "schedule": 1.0, "args": ("tick",)},
    "minute": {"task": "cms.signage.tasks.record_tick", "schedule": crontab(), "args": ("minute",)},
    # The talk's task: at 00:20 on the 2nd, 8th and 15th of each month.
    "retry-partner-unpaid-invoices": {
        "task": "cms.signage.tasks.retry_partner_unpaid_invoices",
        "schedule": crontab(hour=0, minute=20, day_of_month=[2, 8, 15]),
    },
    # Lab 02's sessions: purge expired ones every night.
    "clear-expired-sessions": {
        "task": "cms.signage.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=0),
    },
}

# TODO(step redbeat): tell RedBeat where Redis is (CELERY_REDBEAT_REDIS_URL), how often
# beat wakes up at most (CELERY_BEAT_MAX_LOOP_INTERVAL, seconds) and how long the lock
# outlives a beat that stopped renewing it (CELERY_REDBEAT_LOCK_TIMEOUT, seconds).
# Their defaults are 300 s and 5 x 300 = 1500 s: a dead leader is replaced after 25 minutes.
