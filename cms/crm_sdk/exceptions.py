class CRMError(Exception):
    """The CRM could not be reached or did not do what was asked."""


class CRMAuthError(CRMError):
    """The CRM did not grant an access token, or did not accept ours."""


class CRMTokenRateLimited(CRMAuthError):
    """The CRM refused to issue one more access token for now ("Access Denied").

    The vendor limits how many tokens a client may request in a short time; the message
    is the vendor's ``error_description``.
    """
