from django.contrib import admin

from .models import Account, AuditEvent, CrmToken, Invoice, Playlist, Profile, Screen


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "crm_contact_id"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "account"]
    list_filter = ["account"]


@admin.register(Screen)
class ScreenAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "location", "playlist", "created_at"]
    list_filter = ["account"]


@admin.register(Playlist)
class PlaylistAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "created_at"]
    list_filter = ["account"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "account", "username", "action", "node"]
    list_filter = ["account", "action", "node"]


@admin.register(CrmToken)
class CrmTokenAdmin(admin.ModelAdmin):
    list_display = ["user_key", "expires_at"]


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "account", "amount_cents", "due_date", "status", "attempts", "last_attempt_at"]
    list_filter = ["status", "account"]
