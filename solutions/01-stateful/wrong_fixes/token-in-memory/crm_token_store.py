"""Wrong fix: the token kept in a module-level dictionary: "no file any more"."""

from cms.crm_sdk.token_store import Token
from cms.crm_sdk.token_store import TokenStore as BaseTokenStore

_TOKENS: dict[str, Token] = {}


class TokenStore(BaseTokenStore):
    def find_token(self, user_key: str) -> Token | None:
        return _TOKENS.get(user_key)

    def save_token(self, user_key: str, token: Token) -> None:
        _TOKENS[user_key] = token

    def delete_token(self, user_key: str) -> None:
        _TOKENS.pop(user_key, None)
