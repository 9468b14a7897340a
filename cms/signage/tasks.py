"""Background jobs, run by Celery workers."""

import logging
import os

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import Invoice

logger = logging.getLogger(__name__)


@shared_task
def retry_partner_unpaid_invoices() -> dict:
    """Try again to charge every unpaid invoice that is due.

    Each run counts one attempt per invoice. The charge is simulated and deterministic:
    an even amount (in cents) goes through and the invoice becomes paid; an odd amount is
    declined and the invoice stays unpaid, for the next run.
    """
    now = timezone.now()
    counts = {"attempted": 0, "paid": 0, "still_unpaid": 0}
    due = Invoice.objects.filter(status=Invoice.Status.UNPAID, due_date__lte=timezone.localdate())
    for invoice in due:
        invoice.attempts += 1
        invoice.last_attempt_at = now
        charged = invoice.amount_cents % 2 == 0
        if charged:
            invoice.status = Invoice.Status.PAID
        invoice.save(update_fields=["attempts", "last_attempt_at", "status"])
        logger.info("invoice %s: attempt %d, %s", invoice.number, invoice.attempts, "paid" if charged else "declined")
        counts["attempted"] += 1
        counts["paid" if charged else "still_unpaid"] += 1
    return counts


@shared_task
def ping() -> str:
    """Answers with the node and the pid of the worker process that ran it."""
    return f"pong {settings.CMS_NODE_NAME}/{os.getpid()}"
