"""Celery settings of cms for this lab: a wrong fix, retries on a lost child with no limit."""

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Never give up a task: no limit on its retries, for every task.
CELERY_TASK_ANNOTATIONS = {"*": {"max_retries": None}}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 6,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
