"""The CRM SDK (token store and client) against a small fake CRM, and the CMS's sync page."""

import json
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import parse_qs

import pytest

from cms.crm_sdk import (
    CRMAuthError,
    CRMClient,
    CRMError,
    CRMTokenRateLimited,
    FileTokenStore,
    Token,
)
from cms.signage.audit import get_sink

RATE_LIMIT_MESSAGE = "You have made too many requests continuously. Please try again after some time."


class FakeCRM:
    """The vendor's token endpoint and contact upsert, as far as the client uses them.

    Like the vendor, issuing a new access token makes the previous ones invalid.
    """

    def __init__(self):
        self.valid_tokens = set()
        self.tokens_issued = 0
        self.upserted = []
        self.refuse_tokens = False
        self.upsert_failure = None  # an HTTP status to answer upserts with

    def handle(self, path, headers, body):
        if path == "/oauth/v2/token":
            return self.token(parse_qs(body.decode()))
        if path == "/crm/v2/Contacts/upsert":
            return self.upsert(headers.get("Authorization", ""), json.loads(body))
        return 404, {"code": "INVALID_URL_PATTERN"}

    def token(self, form):
        if self.refuse_tokens:
            return 400, {"error": "Access Denied", "error_description": RATE_LIMIT_MESSAGE}
        if form.get("client_secret") != ["secret"] or form.get("grant_type") != ["refresh_token"]:
            return 400, {"error": "invalid_client"}
        token = f"tok-{uuid.uuid4().hex}"
        self.valid_tokens = {token}
        self.tokens_issued += 1
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer", "api_domain": "x"}

    def upsert(self, authorization, payload):
        if authorization.removeprefix("Zoho-oauthtoken ") not in self.valid_tokens:
            return 401, {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
        if self.upsert_failure:
            return self.upsert_failure, {"code": "INTERNAL_ERROR", "status": "error"}
        self.upserted.extend(payload["data"])
        contact_id = str(4876876000000000 + len(self.upserted))
        return 201, {"data": [{"code": "SUCCESS", "details": {"id": contact_id}, "status": "success"}]}


@pytest.fixture
def fake_crm():
    crm = FakeCRM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer = crm.handle(self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    crm.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield crm
    server.shutdown()
    server.server_close()
    thread.join()


def make_client(crm, store, secret="secret"):
    return CRMClient(crm.url, "client-id", secret, "refresh-token", store)


def in_an_hour():
    return datetime.now(timezone.utc) + timedelta(hours=1)


# --- the token store ---


def test_token_expiry_has_leeway():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    token = Token("a", "r", expires_at=now + timedelta(seconds=60))
    assert not token.is_expired(now=now)
    assert token.is_expired(now=now + timedelta(seconds=31))
    assert not token.is_expired(now=now + timedelta(seconds=31), leeway_seconds=0)


def test_file_token_store_round_trip(tmp_path):
    store = FileTokenStore(tmp_path / "tokens" / "zcrm_oauthtokens.json")
    assert store.find_token("workshop") is None

    token = Token("access", "refresh", expires_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    store.save_token("workshop", token)
    store.save_token("other", Token("b", "r", expires_at=token.expires_at))
    assert FileTokenStore(store.path).find_token("workshop") == token
    assert set(json.loads(store.path.read_text())) == {"workshop", "other"}

    store.delete_token("workshop")
    store.delete_token("never-saved")
    assert store.find_token("workshop") is None
    assert store.find_token("other") is not None
    assert [path.name for path in store.path.parent.iterdir()] == ["zcrm_oauthtokens.json"]


def test_file_token_store_write_is_all_or_nothing(tmp_path):
    store = FileTokenStore(tmp_path / "zcrm_oauthtokens.json")
    first = Token("first", "refresh", expires_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    store.save_token("workshop", first)

    with mock.patch("cms.crm_sdk.token_store.os.replace", side_effect=OSError("disk full")):
        with pytest.raises(OSError):
            store.save_token("workshop", Token("second", "refresh", expires_at=first.expires_at))

    assert store.find_token("workshop") == first
    assert [path.name for path in tmp_path.iterdir()] == ["zcrm_oauthtokens.json"]


# --- the client ---


def test_access_token_is_requested_once_then_reused(fake_crm, tmp_path):
    store = FileTokenStore(tmp_path / "tokens.json")
    client = make_client(fake_crm, store)
    token = client.access_token()
    assert client.access_token() == token
    assert fake_crm.tokens_issued == 1
    assert store.find_token("workshop").access_token == token
    assert store.find_token("workshop").expires_at > in_an_hour() - timedelta(minutes=1)


def test_expired_token_is_renewed(fake_crm, tmp_path):
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save_token("workshop", Token("old", "r", expires_at=datetime.now(timezone.utc)))
    assert make_client(fake_crm, store).access_token() != "old"
    assert fake_crm.tokens_issued == 1


def test_upsert_returns_the_contact_id(fake_crm, tmp_path):
    client = make_client(fake_crm, FileTokenStore(tmp_path / "tokens.json"))
    assert client.upsert_contact({"Last_Name": "Acme"}) == "4876876000000001"
    assert fake_crm.upserted == [{"Last_Name": "Acme"}]


def test_invalid_token_is_dropped_and_the_upsert_retried_once(fake_crm, tmp_path):
    store = FileTokenStore(tmp_path / "tokens.json")
    # Not expired as far as we know, but superseded at the vendor (e.g. by another node).
    store.save_token("workshop", Token("superseded", "r", expires_at=in_an_hour()))

    assert make_client(fake_crm, store).upsert_contact({"Last_Name": "Acme"}) == "4876876000000001"
    assert fake_crm.tokens_issued == 1
    assert store.find_token("workshop").access_token in fake_crm.valid_tokens


def test_token_rate_limit(fake_crm, tmp_path):
    fake_crm.refuse_tokens = True
    client = make_client(fake_crm, FileTokenStore(tmp_path / "tokens.json"))
    with pytest.raises(CRMTokenRateLimited, match="too many requests"):
        client.upsert_contact({"Last_Name": "Acme"})
    assert fake_crm.upserted == []


def test_other_token_errors_are_auth_errors(fake_crm, tmp_path):
    client = make_client(fake_crm, FileTokenStore(tmp_path / "tokens.json"), secret="wrong")
    with pytest.raises(CRMAuthError) as error:
        client.access_token()
    assert not isinstance(error.value, CRMTokenRateLimited)


def test_upsert_failure_is_a_crm_error(fake_crm, tmp_path):
    fake_crm.upsert_failure = 500
    with pytest.raises(CRMError, match="HTTP 500"):
        make_client(fake_crm, FileTokenStore(tmp_path / "tokens.json")).upsert_contact({"Last_Name": "Acme"})


def test_unreachable_crm_is_a_crm_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = CRMClient(f"http://127.0.0.1:{closed_port}", "id", "secret", "r", FileTokenStore(tmp_path / "t.json"))
    with pytest.raises(CRMError, match="cannot reach"):
        client.access_token()


# --- the CMS's sync page ---


def test_sync_stores_the_contact_id_and_is_audited(fake_crm, settings, member_client, account):
    settings.CRM_URL, settings.CRM_CLIENT_SECRET = fake_crm.url, "secret"
    response = member_client.post("/crm/sync/")
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.crm_contact_id == "4876876000000001"
    assert fake_crm.upserted[0]["Partner_Slug"] == account.slug
    synced = get_sink().events_for_account(account.slug)[-1]
    assert (synced.action, synced.detail) == ("crm.synced", {"contact_id": "4876876000000001"})


def test_sync_is_503_when_the_crm_refuses_a_token(fake_crm, settings, member_client, account):
    fake_crm.refuse_tokens = True
    settings.CRM_URL, settings.CRM_CLIENT_SECRET = fake_crm.url, "secret"
    response = member_client.post("/crm/sync/")
    assert response.status_code == 503
    page = response.content.decode()
    assert "refused a new access token" in page
    assert "too many requests" in page
    account.refresh_from_db()
    assert account.crm_contact_id == ""


def test_sync_is_502_when_the_crm_fails(fake_crm, settings, member_client):
    fake_crm.upsert_failure = 500
    settings.CRM_URL, settings.CRM_CLIENT_SECRET = fake_crm.url, "secret"
    assert member_client.post("/crm/sync/").status_code == 502


def test_sync_is_post_only(member_client):
    assert member_client.get("/crm/sync/").status_code == 405
