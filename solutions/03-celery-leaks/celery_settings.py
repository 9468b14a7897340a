"""Celery settings of cms for this lab. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's); Celery reads the CELERY_* names.

Solution: a message is acknowledged only after its task has run, so a task whose pool
child dies is tried again, at most the task's max_retries times (a task that kills
every child is given up, not looped), and the task of a worker lost as a whole (its pod
SIGKILLed: nothing is left to give its messages back) comes back after the visibility
timeout. The price: a task can run twice, so tasks must be idempotent.
"""

# Acknowledge after the task has run: a message whose process dies is still the broker's.
CELERY_TASK_ACKS_LATE = True
# A task whose pool child died is sent again as retry() would (Celery 5.7): the task's
# max_retries bounds it (render_screen_preview: one more try, 1 s later), then it fails.
CELERY_TASK_RETRY_ON_WORKER_LOST = True
# If that retry cannot be sent, give the message back to the queue instead of failing it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True

# The visibility timeout: longer than the longest task (a 2 s render here) and than the
# few seconds a worker may take to notice that a pool child died (it checks its pool every
# 5 s), or a message still being worked on is handed out again and runs twice; short
# enough that the task of a lost worker is back before users give up (10 s in this lab).
# In production: minutes to an hour, longer than your longest task and your longest
# countdown or ETA. The sweeps every second are the lab's clock (kombu's: every 100 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 6,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

# Optional (no check needs it): the worker's main process reserves concurrency x
# prefetch_multiplier messages (2 x 4 by default); pool children hold none of their own.
# With 1 it reserves 2: fewer tasks wait out the visibility timeout when the whole worker
# is lost, and queued tasks are not held back behind a long one while other workers idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
