"""Test stand-in for the workshop lab's ``crm_token_store`` module: the SDK's default file."""

from django.conf import settings

from cms.crm_sdk import FileTokenStore


class TokenStore(FileTokenStore):
    def __init__(self):
        super().__init__(settings.CMS_NODE_DIR / "zcrm_oauthtokens.json")
