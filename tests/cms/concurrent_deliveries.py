"""Two deliveries of the invoice task at once, against the database DATABASE_URL names.

Run by test_cms_idempotency.py in a process of its own, so that Django is set up for that
database (SQLite or PostgreSQL), whatever the test session uses. Each delivery is a thread
with its own database connection; both read the unpaid invoice before either writes (a
barrier holds each one's first write until the other has read), which is the worst case
of two workers running the same message. Prints one JSON line: what happened.
"""

import json
import sys
import threading
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from cms.signage import tasks  # noqa: E402
from cms.signage.models import Account, Invoice  # noqa: E402

WRITES = ("INSERT", "UPDATE", "DELETE")


def main() -> None:
    call_command("migrate", verbosity=0)
    account = Account.objects.create(slug="two-deliveries", name="Two deliveries")
    invoice = Invoice.objects.create(
        account=account, number="TWICE-1", amount_cents=1000, due_date=timezone.localdate()
    )
    connection.close()

    charges: list[str] = []
    real_charge = tasks.charge

    def counting_charge(each: Invoice) -> bool:
        charges.append(each.number)
        return real_charge(each)

    tasks.charge = counting_charge
    both_have_read = threading.Barrier(2, timeout=20)
    results: list[dict] = []
    errors: list[str] = []

    def delivery() -> None:
        waited = False

        def first_write_waits(execute, sql, params, many, context):
            nonlocal waited
            if not waited and sql.lstrip().upper().startswith(WRITES):
                waited = True
                both_have_read.wait()
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(first_write_waits):
                results.append(tasks.charge_unpaid_invoices())
        except Exception as exc:  # reported, not raised: the test shows it
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=delivery) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    invoice.refresh_from_db()
    outcome = {
        "vendor": connection.vendor,
        "charges": len(charges),
        "attempts": invoice.attempts,
        "status": invoice.status,
        "results": results,
        "errors": errors,
    }
    print("OUTCOME " + json.dumps(outcome))


if __name__ == "__main__":
    main()
