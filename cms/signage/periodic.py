"""The legacy guard from the talk: `@periodic_task_that_checks_time(run_every=crontab(...))`.

Before the schedule lived in one place, a periodic task could be sent at the wrong time:
by a second beat, by a beat whose schedule file was lost or corrupted, by a restart.
So the task itself checks the clock and does nothing unless now is one of its
crontab's minutes. With one beat per cluster and its state in Redis (lab 04), the
guard should never trigger; it stays a cheap second line of defence.
"""

import functools
import logging
from datetime import datetime

from celery import shared_task
from celery.schedules import crontab
from django.utils import timezone

logger = logging.getLogger(__name__)


def now() -> datetime:
    """The clock the guard reads (tests replace it)."""
    return timezone.localtime()


def is_scheduled_minute(schedule: crontab, moment: datetime) -> bool:
    """True if `moment` falls in one of the crontab's minutes."""
    return (
        moment.minute in schedule.minute
        and moment.hour in schedule.hour
        and moment.day in schedule.day_of_month
        and moment.month in schedule.month_of_year
        and moment.isoweekday() % 7 in schedule.day_of_week  # crontab: 0 is Sunday
    )


def periodic_task_that_checks_time(run_every: crontab):
    """Register `func` as a task that runs only in the minutes of `run_every`."""

    def decorate(func):
        @functools.wraps(func)
        def guarded(*args, **kwargs):
            moment = now()
            if not is_scheduled_minute(run_every, moment):
                logger.warning("%s skipped: %s is not one of its scheduled minutes", func.__name__, moment)
                return {"skipped": moment.isoformat()}
            return func(*args, **kwargs)

        task = shared_task(name=f"{func.__module__}.{func.__name__}")(guarded)
        task.run_every = run_every
        return task

    return decorate
