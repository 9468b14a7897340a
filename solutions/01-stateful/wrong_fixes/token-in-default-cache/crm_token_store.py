"""Wrong fix: the token kept in Django's cache (in lab 01, the default LocMemCache)."""

from django.core.cache import cache

from cms.crm_sdk.token_store import Token
from cms.crm_sdk.token_store import TokenStore as BaseTokenStore


class TokenStore(BaseTokenStore):
    def find_token(self, user_key: str) -> Token | None:
        return cache.get(f"crm-token:{user_key}")

    def save_token(self, user_key: str, token: Token) -> None:
        cache.set(f"crm-token:{user_key}", token, timeout=None)

    def delete_token(self, user_key: str) -> None:
        cache.delete(f"crm-token:{user_key}")
