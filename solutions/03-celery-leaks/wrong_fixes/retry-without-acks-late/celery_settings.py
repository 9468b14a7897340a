"""Celery settings of cms for this lab: a wrong fix, retries on a lost child, messages acknowledged on receipt."""

CELERY_TASK_ACKS_LATE = False
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 6,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
