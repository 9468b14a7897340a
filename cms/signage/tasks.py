"""Background jobs, run by Celery workers."""

import logging
import os
import time

import psutil
from celery import shared_task
from celery.schedules import crontab
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from cms import thumbnailer

from .models import BeatTick, Invoice
from .periodic import periodic_task_that_checks_time

logger = logging.getLogger(__name__)


def charge(invoice: Invoice) -> bool:
    """The payment provider, simulated and deterministic: an even amount (in cents) goes
    through, an odd one is declined. In real life this call moves money: it must run once
    per attempt, however many times the task's message is delivered."""
    return invoice.amount_cents % 2 == 0


def charge_unpaid_invoices() -> dict:
    """Try again to charge every unpaid invoice that is due.

    Each run counts one attempt per invoice; a declined invoice stays unpaid, for the next
    run. Idempotent, even when two deliveries of the same message run at once (acks_late
    redelivers a message whose worker was lost; a short visibility timeout hands out one
    that is still running): each attempt is claimed first with a conditional UPDATE (the
    row still unpaid, with the number of attempts this run read), and only the delivery
    whose UPDATE changed the row charges. The database decides, not what a delivery read.
    """
    now = timezone.now()
    counts = {"attempted": 0, "paid": 0, "still_unpaid": 0}
    due = Invoice.objects.filter(status=Invoice.Status.UNPAID, due_date__lte=timezone.localdate())
    for invoice in due:
        claimed = Invoice.objects.filter(pk=invoice.pk, status=Invoice.Status.UNPAID, attempts=invoice.attempts).update(
            attempts=F("attempts") + 1, last_attempt_at=now
        )
        if not claimed:
            logger.info("invoice %s: another delivery is charging it; skipped", invoice.number)
            continue
        charged = charge(invoice)
        if charged:
            Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.PAID)
        logger.info(
            "invoice %s: attempt %d, %s", invoice.number, invoice.attempts + 1, "paid" if charged else "declined"
        )
        counts["attempted"] += 1
        counts["paid" if charged else "still_unpaid"] += 1
    return counts


# The talk's schedule: at 00:20 on the 2nd, 8th and 15th of each month (lab 04's beat sends it).
RETRY_INVOICES_SCHEDULE = crontab(hour=0, minute=20, day_of_month=[2, 8, 15])


@periodic_task_that_checks_time(run_every=RETRY_INVOICES_SCHEDULE)
def retry_partner_unpaid_invoices() -> dict:
    """The periodic task: charge_unpaid_invoices, guarded by the clock (see periodic.py)."""
    return charge_unpaid_invoices()


@shared_task(bind=True)
def record_tick(self, label: str = "tick") -> None:
    """Lab 04's fast periodic task: records when it ran, and which process sent it
    (Celery's "origin" header: gen<pid>@<host> of the beat that published it)."""
    BeatTick.objects.create(task_id=self.request.id, label=label, sent_by=self.request.origin or "?")


@shared_task
def clear_expired_sessions() -> None:
    """Daily: delete expired sessions from the database (what `manage.py clearsessions` does)."""
    call_command("clearsessions")


@shared_task
def ping() -> str:
    """Answers with the node and the pid of the worker process that ran it."""
    return f"pong {settings.CMS_NODE_NAME}/{os.getpid()}"


# Its retry policy, used when the worker is told to retry a task whose pool child died
# (task_retry_on_worker_lost, lab 03): one more try (Celery's default is 3 retries), sent
# 1 s after the loss (Celery's default is 180 s; the workshop's checks wait for it).
@shared_task(max_retries=1, default_retry_delay=1)
def render_screen_preview(layout: str = "default", width: int = 360, height: int = 360, seconds: float = 0) -> dict:
    """Render a screen's preview with the vendor library (which leaks its frame buffer).

    Returns which process ran it and that process's resident memory afterwards, so a
    caller can see memory per worker child without sampling it.
    """
    if seconds:
        time.sleep(seconds)  # a slow render: long enough to be caught mid-task
    fingerprint = thumbnailer.render(layout, width, height)
    return {
        "fingerprint": fingerprint,
        "pid": os.getpid(),
        "rss_kib": psutil.Process().memory_info().rss // 1024,
        "leaked_kib": thumbnailer.frame_bytes(width, height) // 1024,
    }
