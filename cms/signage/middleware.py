"""Tell which node and which worker process served a request."""

import os

from django.conf import settings


def served_by() -> str:
    # The pid is read per response: uWSGI forks its workers after loading the app.
    return f"{settings.CMS_NODE_NAME}/{os.getpid()}"


class ServedByMiddleware:
    """Adds ``X-Served-By: <node>/<pid>`` to every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Served-By"] = served_by()
        return response


def served_by_context(request):
    """Template context processor: the same ``node/pid``, for the page footer."""
    return {"served_by": served_by()}
