from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from cms.signage.models import Account, Invoice, Playlist, Profile, Screen

# A lab password, the same for every workshop user. Never use it anywhere else.
LAB_PASSWORD = "workshop"

ACCOUNTS = [
    {
        "slug": "acme",
        "name": "Acme Signage",
        "users": ["alice", "bob"],
        "screens": [("Lobby", "Main entrance"), ("Cafeteria", "Ground floor")],
        "playlist": (
            "Welcome loop",
            ["https://media.example.com/acme/welcome.mp4", "https://media.example.com/acme/menu.png"],
        ),
    },
    {
        "slug": "globex",
        "name": "Globex Displays",
        "users": ["carol", "dave"],
        "screens": [("Reception", "Building A"), ("Warehouse", "Dock 3")],
        "playlist": (
            "Safety first",
            ["https://media.example.com/globex/safety.mp4", "https://media.example.com/globex/exits.png"],
        ),
    },
]

# (number, account, amount in cents, days until due, status). Even unpaid amounts are
# charged by the next retry run, odd ones are declined (see tasks.retry_partner_unpaid_invoices).
INVOICES = [
    ("ACME-0001", "acme", 12000, -10, Invoice.Status.UNPAID),
    ("ACME-0002", "acme", 4999, -3, Invoice.Status.UNPAID),
    ("ACME-0003", "acme", 8000, 20, Invoice.Status.UNPAID),
    ("GLOBEX-0001", "globex", 15001, -5, Invoice.Status.UNPAID),
    ("GLOBEX-0002", "globex", 20000, -30, Invoice.Status.PAID),
]


class Command(BaseCommand):
    help = "Create the workshop's accounts, users, screens, playlists and invoices (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        created = []
        User = get_user_model()

        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", LAB_PASSWORD)
            created.append("superuser admin")

        for spec in ACCOUNTS:
            account, new = Account.objects.get_or_create(slug=spec["slug"], defaults={"name": spec["name"]})
            if new:
                created.append(f"account {account.slug}")

            for username in spec["users"]:
                user, new = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
                if new:
                    user.set_password(LAB_PASSWORD)
                    user.save()
                    created.append(f"user {username} ({account.slug})")
                Profile.objects.get_or_create(user=user, defaults={"account": account})

            playlist_name, items = spec["playlist"]
            playlist, new = Playlist.objects.get_or_create(
                account=account, name=playlist_name, defaults={"items": "\n".join(items)}
            )
            if new:
                created.append(f"playlist {playlist_name!r} ({account.slug})")

            for name, location in spec["screens"]:
                _, new = Screen.objects.get_or_create(
                    account=account, name=name, defaults={"location": location, "playlist": playlist}
                )
                if new:
                    created.append(f"screen {name!r} ({account.slug})")

        today = timezone.localdate()
        for number, slug, amount_cents, due_in_days, status in INVOICES:
            _, new = Invoice.objects.get_or_create(
                number=number,
                defaults={
                    "account": Account.objects.get(slug=slug),
                    "amount_cents": amount_cents,
                    "due_date": today + timedelta(days=due_in_days),
                    "status": status,
                },
            )
            if new:
                created.append(f"invoice {number} ({slug})")

        for line in created:
            self.stdout.write(f"created {line}")
        if created:
            summary = f"{len(created)} objects created; password of every user: {LAB_PASSWORD}"
            self.stdout.write(self.style.SUCCESS(summary))
        else:
            self.stdout.write("nothing to create: the workshop data is already there")
