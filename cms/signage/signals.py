"""Audit logins and logouts of partner users (users without an account are not audited)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from . import audit
from .models import Profile


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    _record_for_member(user, "auth.login")


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        _record_for_member(user, "auth.logout")


def _record_for_member(user, action):
    profile = Profile.objects.select_related("account").filter(user=user).first()
    if profile is not None:
        audit.record(user, profile.account, action)
