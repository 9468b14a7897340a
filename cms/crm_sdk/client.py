from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .exceptions import CRMAuthError, CRMError, CRMTokenRateLimited
from .token_store import Token, TokenStore

if TYPE_CHECKING:
    import httpx


class CRMClient:
    """A client of the CRM's REST API that gets, keeps and renews its own access token.

    It holds a long-lived refresh token; short-lived access tokens are kept in ``store``
    under ``user_key`` and renewed from the vendor's OAuth endpoint when they expire.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: TokenStore,
        user_key: str = "workshop",
        timeout: float = 10,
    ):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.store = store
        self.user_key = user_key
        self.timeout = timeout

    def access_token(self) -> str:
        """The stored access token; a new one from the vendor if none is stored or it expired."""
        token = self.store.find_token(self.user_key)
        if token is None or token.is_expired():
            with self.store.refresh_lock(self.user_key):
                # another instance may have fetched one while this one waited for the lock
                token = self.store.find_token(self.user_key)
                if token is None or token.is_expired():
                    token = self._request_access_token()
                    self.store.save_token(self.user_key, token)
        return token.access_token

    def upsert_contact(self, data: dict) -> str:
        """Create or update one contact; returns the CRM's id of it."""
        response = self._post_upsert(data)
        if _is_invalid_token(response):
            # The vendor no longer accepts the stored token (revoked, or superseded by a
            # newer one): forget it and try once more with a fresh one.
            self.store.delete_token(self.user_key)
            response = self._post_upsert(data)
        if response.status_code == 401:
            raise CRMAuthError(f"the CRM did not accept the access token: {response.text}")
        if response.status_code not in (200, 201):
            raise CRMError(f"contact upsert failed: HTTP {response.status_code}: {response.text}")
        result = (_json(response).get("data") or [{}])[0]
        if result.get("status") != "success":
            raise CRMError(f"contact upsert failed: {result}")
        return result["details"]["id"]

    def _post_upsert(self, data: dict) -> httpx.Response:
        return self._post(
            "/crm/v2/Contacts/upsert",
            json={"data": [data]},
            headers={"Authorization": f"Zoho-oauthtoken {self.access_token()}"},
        )

    def _request_access_token(self) -> Token:
        requested_at = datetime.now(timezone.utc)
        response = self._post(
            "/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "refresh_token": self.refresh_token,
            },
        )
        body = _json(response)
        if body.get("error") == "Access Denied":
            raise CRMTokenRateLimited(body.get("error_description", "Access Denied"))
        if response.status_code != 200 or "access_token" not in body:
            raise CRMAuthError(f"the CRM did not issue an access token: HTTP {response.status_code}: {response.text}")
        return Token(
            access_token=body["access_token"],
            refresh_token=self.refresh_token,
            expires_at=requested_at + timedelta(seconds=int(body["expires_in"])),
        )

    def _post(self, path: str, **kwargs) -> httpx.Response:
        # Imported on first use: `import httpx` (0.28) also loads its command-line tool when
        # click, rich and pygments are installed (a third of a second of CPU or more), and only
        # the CRM sync view calls the CRM: most web workers, and every Celery worker, never do.
        import httpx

        try:
            return httpx.post(f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise CRMError(f"cannot reach the CRM at {self.base_url}: {exc}") from exc


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_invalid_token(response: httpx.Response) -> bool:
    return response.status_code == 401 and _json(response).get("code") == "INVALID_TOKEN"
