"""Wrong fix: the SDK's token file moved to settings.CMS_DATA_DIR."""

from django.conf import settings

from cms.crm_sdk.token_store import FileTokenStore


class TokenStore(FileTokenStore):
    def __init__(self):
        super().__init__(settings.CMS_DATA_DIR / "zcrm_oauthtokens.json")
