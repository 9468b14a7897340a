"""Wrong fix: the SDK's token file in a folder every process on this computer can reach."""

from django.conf import settings

from cms.crm_sdk.token_store import FileTokenStore


class TokenStore(FileTokenStore):
    def __init__(self):
        super().__init__(settings.CMS_NODE_DIR.parent / "shared-token" / "zcrm_oauthtokens.json")
