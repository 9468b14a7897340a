"""Where the CRM SDK keeps its OAuth access token
(settings.CMS_CRM_TOKEN_STORE = "crm_token_store.TokenStore").

The vendor SDK's default is a file in the current directory, as the Zoho SDK does:
the first request fetches an access token and saves it in the file, and every later
request reuses it until it expires. The CRM grants only a few tokens per window
(this workshop's CRM: one per 10 minutes), so every node that fetches a token of
its own uses up the allowance, and the next one is refused.

The contract (see cms/crm_sdk/token_store.py):
    find_token(user_key) -> Token | None
    save_token(user_key, token)
    delete_token(user_key)
"""

from django.conf import settings

from cms.crm_sdk.token_store import FileTokenStore


# TODO(step crm-token): keep the token where every node finds it: subclass
# cms.crm_sdk.token_store.TokenStore and implement the three methods with the
# cms.signage.models.CrmToken model.
class TokenStore(FileTokenStore):
    def __init__(self):
        super().__init__(settings.CMS_NODE_DIR / "zcrm_oauthtokens.json")
