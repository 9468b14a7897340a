"""Celery settings of cms for this lab: a wrong fix, acks_late alone."""

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
