"""Celery settings of cms for this lab. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's); Celery reads the CELERY_* names.

Solution: a message is acknowledged only after its task has run, and given back to
the broker if the child running it dies, so another child runs it. The price: a task
can run twice (a child killed after the work but before the ack), so tasks must be
idempotent. One message at a time per child, so a dying child holds no others.
"""

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
