"""Celery settings of cms for this lab. The workshop loads this module into
cms.settings (its UPPERCASE names override cms's); Celery reads the CELERY_* names.

This is Celery's default: a task's message is acknowledged when the worker hands it to
a pool child. If the child then dies (the OOM killer, a SIGKILL), the broker has
already forgotten the message: the task is marked failed and never runs again.
"""

# TODO(step no-lost-tasks): acknowledge a message only after its task has run, and give
# the message back to the broker when the child running it dies.
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = False

# TODO(step poison-message): a task that kills every child that runs it must not come
# back forever: bound how many times a task whose child died is tried again.

# The Redis transport's options (kombu). A message that a worker took and did not
# acknowledge waits in the broker's "unacked" set. kombu gives it back to the queue once
# it is older than the visibility timeout, when a worker sweeps that set: when the worker
# starts, then every unacked_restore_interval x unacked_restore_throttle seconds (kombu's
# defaults: 10 x 10). This lab sweeps every second, so that what takes minutes in
# production takes seconds here; keep these two.
# TODO(step worker-lost): a visibility timeout that brings back the task of a worker
# lost as a whole (kombu's default: 3600 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
