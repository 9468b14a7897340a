"""Celery settings of cms for this lab: a wrong fix, the visibility timeout left at kombu's default."""

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
