import json
import os
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path


@dataclass
class Token:
    """An OAuth access token and what is needed to renew it."""

    access_token: str
    refresh_token: str
    expires_at: datetime

    def is_expired(self, now: datetime | None = None, leeway_seconds: int = 30) -> bool:
        """True if the token has expired, or will within ``leeway_seconds``."""
        now = now or datetime.now(timezone.utc)
        return now >= self.expires_at - timedelta(seconds=leeway_seconds)


class TokenStore:
    """Where the client keeps its access tokens, keyed by user key.

    Subclass this to keep tokens where every instance of your app can see them.
    """

    def find_token(self, user_key: str) -> Token | None:
        raise NotImplementedError

    def save_token(self, user_key: str, token: Token) -> None:
        raise NotImplementedError

    def delete_token(self, user_key: str) -> None:
        raise NotImplementedError

    def refresh_lock(self, user_key: str) -> AbstractContextManager:
        """Held while the client fetches a new token, so that two instances of the app
        that both find no valid token do not both ask the vendor (each request for a token
        counts against the vendor's limit). The default locks nothing: one process.
        A shared store overrides it with a lock every instance sees."""
        return nullcontext()


class FileTokenStore(TokenStore):
    """The SDK's default store: one JSON file, ``{user_key: token}``, on the local disk.

    Writes replace the whole file atomically, so a reader never sees half a file; two
    processes that save at the same time still race, and the last one wins.
    """

    def __init__(self, path):
        self.path = Path(path)

    def find_token(self, user_key: str) -> Token | None:
        fields = self._read().get(user_key)
        if fields is None:
            return None
        return Token(
            access_token=fields["access_token"],
            refresh_token=fields["refresh_token"],
            expires_at=datetime.fromisoformat(fields["expires_at"]),
        )

    def save_token(self, user_key: str, token: Token) -> None:
        tokens = self._read()
        tokens[user_key] = {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at.isoformat(),
        }
        self._write(tokens)

    def delete_token(self, user_key: str) -> None:
        tokens = self._read()
        if tokens.pop(user_key, None) is not None:
            self._write(tokens)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _write(self, tokens: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file in the same folder, then os.replace(): atomic on POSIX.
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(tokens, file, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
