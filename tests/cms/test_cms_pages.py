"""Sign-in, the account-scoped pages, and the audit trail they leave."""

import pytest
from django.conf import settings
from django.test import Client

from cms.signage.audit import get_sink
from cms.signage.models import Playlist, Screen


def actions_of(account):
    return [entry.action for entry in get_sink().events_for_account(account.slug)]


def test_login_and_logout_are_audited(client, member, account):
    response = client.post("/login/", {"username": member.username, "password": "secret-pw"})
    assert response.status_code == 302
    assert response["Location"] == "/"

    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert actions_of(account) == ["auth.login", "auth.logout"]
    assert client.get("/").status_code == 302  # signed out again


def test_wrong_password_is_refused(client, member):
    response = client.post("/login/", {"username": member.username, "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_pages_require_login(db, client):
    for url in ["/", "/screens/", "/playlists/", "/audit/", "/audit/report.json"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_user_without_account_gets_403(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root-test", password="pw")
    client.force_login(admin)
    assert client.get("/").status_code == 403


def test_dashboard_shows_only_own_account(member_client, account, other_account):
    Screen.objects.create(account=account, name="Our lobby screen")
    Screen.objects.create(account=other_account, name="Their secret screen")
    Playlist.objects.create(account=account, name="Our playlist")
    Playlist.objects.create(account=other_account, name="Their playlist")

    page = member_client.get("/").content.decode()
    assert "Our lobby screen" in page and "Our playlist" in page
    assert "Their secret screen" not in page and "Their playlist" not in page


def test_screen_create_edit_delete(member_client, account):
    playlist = Playlist.objects.create(account=account, name="Loop")
    response = member_client.post("/screens/", {"name": "Hall", "location": "1st floor", "playlist": playlist.pk})
    assert response.status_code == 302
    screen = Screen.objects.get(account=account, name="Hall")
    assert screen.playlist == playlist

    assert member_client.get(f"/screens/{screen.pk}/").status_code == 200
    response = member_client.post(f"/screens/{screen.pk}/", {"name": "Main hall", "location": "1st floor"})
    assert response.status_code == 302
    screen.refresh_from_db()
    assert (screen.name, screen.playlist) == ("Main hall", None)

    assert member_client.get(f"/screens/{screen.pk}/delete/").status_code == 405
    assert member_client.post(f"/screens/{screen.pk}/delete/").status_code == 302
    assert not Screen.objects.filter(pk=screen.pk).exists()

    assert actions_of(account)[-3:] == ["screen.created", "screen.updated", "screen.deleted"]


def test_invalid_screen_form_is_shown_again(member_client, account):
    response = member_client.post("/screens/", {"name": ""})
    assert response.status_code == 200
    assert not Screen.objects.filter(account=account).exists()


def test_other_accounts_objects_are_404(member_client, other_account):
    screen = Screen.objects.create(account=other_account, name="Not yours")
    theirs = Playlist.objects.create(account=other_account, name="Not yours either")
    assert member_client.get(f"/screens/{screen.pk}/").status_code == 404
    assert member_client.post(f"/screens/{screen.pk}/delete/").status_code == 404
    assert Screen.objects.filter(pk=screen.pk).exists()

    # Nor can a screen be given another account's playlist.
    response = member_client.post("/screens/", {"name": "Sneaky", "playlist": theirs.pk})
    assert response.status_code == 200
    assert "playlist" in response.context["form"].errors


def test_playlist_create(member_client, account):
    response = member_client.post("/playlists/", {"name": "Promo", "items": "https://a/1.mp4\n\nhttps://a/2.png\n"})
    assert response.status_code == 302
    playlist = Playlist.objects.get(account=account, name="Promo")
    assert playlist.item_urls() == ["https://a/1.mp4", "https://a/2.png"]
    assert "https://a/2.png" in member_client.get("/playlists/").content.decode()
    assert actions_of(account)[-1] == "playlist.created"


def test_audit_report(member_client, member, account, other_member, other_account):
    member_client.post("/screens/", {"name": "Kiosk"})
    other_client = Client()
    other_client.force_login(other_member)
    other_client.post("/screens/", {"name": "Elsewhere"})

    report = member_client.get("/audit/report.json").json()
    assert report["account"] == account.slug
    assert report["node"] == settings.CMS_NODE_NAME
    assert [event["action"] for event in report["events"]] == ["auth.login", "screen.created"]
    created = report["events"][1]
    assert created["username"] == member.username
    assert created["account"] == account.slug
    assert created["node"] == "test-node"
    assert created["detail"]["name"] == "Kiosk"
    assert created["at"] >= report["events"][0]["at"]

    page = member_client.get("/audit/").content.decode()
    assert "screen.created" in page and "Kiosk" in page and "Elsewhere" not in page


@pytest.mark.parametrize("url", ["/", "/screens/", "/playlists/", "/audit/"])
def test_pages_render(member_client, url):
    response = member_client.get(url)
    assert response.status_code == 200
    assert "Served by test-node/" in response.content.decode()
