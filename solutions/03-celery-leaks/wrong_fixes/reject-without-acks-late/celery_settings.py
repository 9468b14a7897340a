"""Celery settings of cms for this lab: a wrong fix, reject_on_worker_lost without acks_late."""

CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
