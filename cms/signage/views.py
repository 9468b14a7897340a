"""Pages of the CMS. Every page is scoped to the account of the signed-in user."""

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cms.crm_sdk import CRMError, CRMTokenRateLimited

from . import audit, crm
from .forms import PlaylistForm, ScreenForm
from .models import Profile


def account_required(view):
    """Sign-in required; the view gets the user's account as its second argument."""

    @login_required
    @functools.wraps(view)
    def view_with_account(request, *args, **kwargs):
        profile = Profile.objects.select_related("account").filter(user=request.user).first()
        if profile is None:
            return render(request, "signage/no_account.html", status=403)
        return view(request, profile.account, *args, **kwargs)

    return view_with_account


@account_required
def dashboard(request, account):
    return render(
        request,
        "signage/dashboard.html",
        {
            "account": account,
            "screens": account.screens.select_related("playlist"),
            "playlists": account.playlists.all(),
        },
    )


@account_required
def screen_list(request, account):
    form = ScreenForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        form.instance.account = account
        screen = form.save()
        audit.record(request.user, account, "screen.created", screen_id=screen.pk, name=screen.name)
        messages.success(request, f"Screen “{screen.name}” created.")
        return redirect("screen_list")
    screens = account.screens.select_related("playlist")
    return render(request, "signage/screen_list.html", {"screens": screens, "form": form})


@account_required
def screen_edit(request, account, screen_id):
    screen = get_object_or_404(account.screens, pk=screen_id)
    form = ScreenForm(request.POST or None, instance=screen, account=account)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record(
            request.user,
            account,
            "screen.updated",
            screen_id=screen.pk,
            name=screen.name,
            changed=form.changed_data,
        )
        messages.success(request, f"Screen “{screen.name}” saved.")
        return redirect("screen_list")
    return render(request, "signage/screen_edit.html", {"screen": screen, "form": form})


@require_POST
@account_required
def screen_delete(request, account, screen_id):
    screen = get_object_or_404(account.screens, pk=screen_id)
    audit.record(request.user, account, "screen.deleted", screen_id=screen.pk, name=screen.name)
    screen.delete()
    messages.success(request, f"Screen “{screen.name}” deleted.")
    return redirect("screen_list")


@account_required
def playlist_list(request, account):
    form = PlaylistForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.account = account
        playlist = form.save()
        audit.record(
            request.user,
            account,
            "playlist.created",
            playlist_id=playlist.pk,
            name=playlist.name,
            items=len(playlist.item_urls()),
        )
        messages.success(request, f"Playlist “{playlist.name}” created.")
        return redirect("playlist_list")
    return render(request, "signage/playlist_list.html", {"playlists": account.playlists.all(), "form": form})


@account_required
def audit_report(request, account):
    events = audit.get_sink().events_for_account(account.slug)
    return render(request, "signage/audit_report.html", {"account": account, "events": events})


@account_required
def audit_report_json(request, account):
    events = audit.get_sink().events_for_account(account.slug)
    return JsonResponse(
        {
            "account": account.slug,
            "node": settings.CMS_NODE_NAME,
            "events": [entry.to_dict() for entry in events],
        }
    )


@require_POST
@account_required
def crm_sync(request, account):
    """Create or update the account's contact in the partner CRM."""
    try:
        contact_id = crm.get_client().upsert_contact(crm.contact_for(account))
    except CRMTokenRateLimited as exc:
        return render(request, "signage/crm_error.html", {"token_refused": True, "error": exc}, status=503)
    except CRMError as exc:
        return render(request, "signage/crm_error.html", {"token_refused": False, "error": exc}, status=502)
    account.crm_contact_id = contact_id
    account.save(update_fields=["crm_contact_id"])
    audit.record(request.user, account, "crm.synced", contact_id=contact_id)
    messages.success(request, f"Account synced to the CRM (contact {contact_id}).")
    return redirect("dashboard")
