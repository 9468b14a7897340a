"""Right fix by another route: the token in Redis (the cluster's Valkey), which every
node shares, instead of the database. It expires there when the token does."""

import json
from datetime import UTC, datetime

import redis
from django.conf import settings

from cms.crm_sdk.token_store import Token
from cms.crm_sdk.token_store import TokenStore as BaseTokenStore


class TokenStore(BaseTokenStore):
    def __init__(self):
        self.redis = redis.Redis.from_url(settings.REDIS_URL)

    def find_token(self, user_key: str) -> Token | None:
        raw = self.redis.get(f"crm-token:{user_key}")
        if raw is None:
            return None
        fields = json.loads(raw)
        return Token(fields["access_token"], fields["refresh_token"], datetime.fromisoformat(fields["expires_at"]))

    def save_token(self, user_key: str, token: Token) -> None:
        fields = {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at.isoformat(),
        }
        seconds = max(1, int((token.expires_at - datetime.now(UTC)).total_seconds()))
        self.redis.set(f"crm-token:{user_key}", json.dumps(fields), ex=seconds)

    def delete_token(self, user_key: str) -> None:
        self.redis.delete(f"crm-token:{user_key}")

    def refresh_lock(self, user_key: str):
        # one fetch at a time across the cluster; expires on its own if its holder dies
        return self.redis.lock(f"crm-token-lock:{user_key}", timeout=30, blocking_timeout=30)
