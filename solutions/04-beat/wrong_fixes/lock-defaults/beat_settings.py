"""The periodic tasks of cms, and how beat keeps their schedule. The workshop loads
this module into cms.settings (its UPPERCASE names override cms's).

Wrong fix: RedBeat and its Redis, but the lock left at its defaults (a loop interval of
300 s, a lock timeout of 5 x 300 s).
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

CELERY_REDBEAT_REDIS_URL = REDIS_URL
