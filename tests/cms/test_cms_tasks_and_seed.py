"""The Celery tasks and the workshop's seed command."""

import io
import os
from datetime import timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from cms.signage import periodic
from cms.signage.models import Account, Invoice, Playlist, Profile, Screen
from cms.signage.tasks import charge_unpaid_invoices, ping, retry_partner_unpaid_invoices


def test_retry_charges_due_unpaid_invoices(account):
    today = timezone.localdate()

    def invoice(number, amount_cents, due_in_days, status=Invoice.Status.UNPAID):
        return Invoice.objects.create(
            account=account,
            number=number,
            amount_cents=amount_cents,
            due_date=today + timedelta(days=due_in_days),
            status=status,
        )

    even_due = invoice("T-1", 1000, -1)
    odd_due = invoice("T-2", 1001, 0)
    not_due = invoice("T-3", 1000, 1)
    paid = invoice("T-4", 1000, -5, Invoice.Status.PAID)

    assert charge_unpaid_invoices() == {"attempted": 2, "paid": 1, "still_unpaid": 1}
    for each in (even_due, odd_due, not_due, paid):
        each.refresh_from_db()
    assert (even_due.status, even_due.attempts) == ("paid", 1)
    assert (odd_due.status, odd_due.attempts) == ("unpaid", 1)
    assert even_due.last_attempt_at is not None
    assert (not_due.attempts, not_due.last_attempt_at) == (0, None)
    assert paid.attempts == 0

    # The next run only retries what is still unpaid.
    assert charge_unpaid_invoices() == {"attempted": 1, "paid": 0, "still_unpaid": 1}
    odd_due.refresh_from_db()
    assert odd_due.attempts == 2


def test_the_periodic_task_runs_only_in_its_scheduled_minutes(account, monkeypatch):
    from datetime import datetime
    from datetime import timezone as tz

    Invoice.objects.create(account=account, number="G-1", amount_cents=1000, due_date=timezone.localdate())
    monkeypatch.setattr(periodic, "now", lambda: datetime(2026, 11, 9, 0, 20, tzinfo=tz.utc))
    assert "skipped" in retry_partner_unpaid_invoices.apply().get()  # the 9th is not a scheduled day
    monkeypatch.setattr(periodic, "now", lambda: datetime(2026, 11, 8, 0, 20, 30, tzinfo=tz.utc))
    assert retry_partner_unpaid_invoices.apply().get()["attempted"] >= 1


def test_ping_names_node_and_worker_process():
    assert ping.apply().get() == f"pong test-node/{os.getpid()}"


def seed():
    out = io.StringIO()
    call_command("seed_workshop", stdout=out)
    return out.getvalue()


def counts():
    return [model.objects.count() for model in (Account, User, Profile, Screen, Playlist, Invoice)]


def test_seed_is_idempotent(db):
    first = seed()
    assert "created account acme" in first
    assert "created user alice (acme)" in first
    assert "created superuser admin" in first
    after_first = counts()

    assert "nothing to create" in seed()
    assert counts() == after_first

    assert authenticate(username="carol", password="workshop") is not None
    assert User.objects.get(username="carol").profile.account.slug == "globex"
    assert User.objects.get(username="admin").is_superuser
    assert Screen.objects.filter(account__slug="acme").count() == 2
    assert Invoice.objects.filter(status="unpaid", due_date__lte=timezone.localdate()).exists()
