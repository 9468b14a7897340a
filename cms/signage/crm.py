"""The CMS side of the partner CRM: a client built from settings, and what we send it."""

from django.conf import settings

from cms.crm_sdk import CRMClient

from .lab_classes import import_lab_class
from .models import Account


def get_client() -> CRMClient:
    """A CRM client whose token store is the class named by ``settings.CMS_CRM_TOKEN_STORE``."""
    store_class = import_lab_class("CMS_CRM_TOKEN_STORE", settings.CMS_CRM_TOKEN_STORE)
    return CRMClient(
        base_url=settings.CRM_URL,
        client_id=settings.CRM_CLIENT_ID,
        client_secret=settings.CRM_CLIENT_SECRET,
        refresh_token=settings.CRM_REFRESH_TOKEN,
        store=store_class(),
    )


def contact_for(account: Account) -> dict:
    """The CRM contact that stands for a partner account."""
    return {"Last_Name": account.name, "Account_Name": account.name, "Partner_Slug": account.slug}
