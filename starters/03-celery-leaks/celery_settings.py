"""Celery settings of cms for this lab. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's); Celery reads the CELERY_* names.

This is Celery's default: a task's message is acknowledged when a worker child
*receives* it. If the child then dies (the OOM killer, a SIGKILL), the broker has
already forgotten the message: the task is marked failed and never runs again.
"""

# TODO(step no-lost-tasks): acknowledge a message only after its task has run
# (task_acks_late), and give the message back to the broker when the child running it
# dies (task_reject_on_worker_lost). Take one message at a time per child.
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = False
