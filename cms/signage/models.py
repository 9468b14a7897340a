import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Account(models.Model):
    """A partner: the company whose screens these are. Every user belongs to one."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    crm_contact_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="members")

    def __str__(self):
        return f"{self.user} ({self.account})"


class Playlist(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="playlists")
    name = models.CharField(max_length=200)
    items = models.TextField(blank=True, help_text="One media URL per line.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def item_urls(self) -> list[str]:
        return [line.strip() for line in self.items.splitlines() if line.strip()]


class Screen(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="screens")
    name = models.CharField(max_length=200)
    location = models.CharField(max_length=200, blank=True)
    playlist = models.ForeignKey(Playlist, on_delete=models.SET_NULL, null=True, blank=True, related_name="screens")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AuditEvent(models.Model):
    """One audit entry kept in the database (for sinks that store entries here)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    at = models.DateTimeField()
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="audit_events")
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=100)
    detail = models.JSONField(default=dict)
    node = models.CharField(max_length=200)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["account", "at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.action}"


class CrmToken(models.Model):
    """A CRM OAuth token kept in the database (for token stores that keep it here)."""

    user_key = models.CharField(max_length=100, unique=True)
    access_token = models.CharField(max_length=500)
    refresh_token = models.CharField(max_length=500)
    expires_at = models.DateTimeField()

    def __str__(self):
        return self.user_key


class Invoice(models.Model):
    class Status(models.TextChoices):
        UNPAID = "unpaid"
        PAID = "paid"
        FAILED = "failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invoices")
    number = models.CharField(max_length=50, unique=True)
    amount_cents = models.IntegerField()
    due_date = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNPAID)
    attempts = models.IntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_date", "number"]

    def __str__(self):
        return self.number


class BeatTick(models.Model):
    """One run of lab 04's fast periodic task: when it ran, and which beat sent it."""

    task_id = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=50)
    sent_by = models.CharField(max_length=200)  # Celery's origin header: gen<pid>@<host>
    ran_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"{self.label} at {self.ran_at:%H:%M:%S.%f} from {self.sent_by}"
