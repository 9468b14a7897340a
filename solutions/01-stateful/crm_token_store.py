"""Where the CRM SDK keeps its OAuth access token
(settings.CMS_CRM_TOKEN_STORE = "crm_token_store.TokenStore").

Solution: the token lives in the database, so the whole cluster shares one token
and asks the CRM for a new one only when it expires. refresh_lock (beyond the lab's
TODO) makes two nodes that both find no valid token at the same moment fetch one, not
two: the first takes the token's row lock, the second waits, then finds the new token.
"""

from contextlib import contextmanager
from datetime import UTC, datetime

from django.db import transaction

from cms.crm_sdk.token_store import Token
from cms.crm_sdk.token_store import TokenStore as BaseTokenStore
from cms.signage.models import CrmToken


class TokenStore(BaseTokenStore):
    def find_token(self, user_key: str) -> Token | None:
        row = CrmToken.objects.filter(user_key=user_key).first()
        if row is None:
            return None
        return Token(access_token=row.access_token, refresh_token=row.refresh_token, expires_at=row.expires_at)

    def save_token(self, user_key: str, token: Token) -> None:
        CrmToken.objects.update_or_create(
            user_key=user_key,
            defaults={
                "access_token": token.access_token,
                "refresh_token": token.refresh_token,
                "expires_at": token.expires_at,
            },
        )

    def delete_token(self, user_key: str) -> None:
        CrmToken.objects.filter(user_key=user_key).delete()

    @contextmanager
    def refresh_lock(self, user_key: str):
        with transaction.atomic():
            # SELECT ... FOR UPDATE on PostgreSQL (a placeholder row, already expired, the
            # first time); SQLite takes its database-wide write lock at BEGIN (cms.settings)
            CrmToken.objects.select_for_update().get_or_create(
                user_key=user_key,
                defaults={"access_token": "", "refresh_token": "", "expires_at": datetime(2000, 1, 1, tzinfo=UTC)},
            )
            yield
