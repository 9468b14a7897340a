"""Python SDK of the partner CRM's REST API (shaped like the Zoho CRM SDK).

A vendor package vendored into the repository: it knows nothing of Django. It keeps the
OAuth access token in a ``TokenStore``; by default a JSON file on the local disk.
"""

from .client import CRMClient
from .exceptions import CRMAuthError, CRMError, CRMTokenRateLimited
from .token_store import FileTokenStore, Token, TokenStore

__all__ = [
    "CRMAuthError",
    "CRMClient",
    "CRMError",
    "CRMTokenRateLimited",
    "FileTokenStore",
    "Token",
    "TokenStore",
]
