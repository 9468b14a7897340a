"""Tell which node and which worker process served a request."""

import os

from django.conf import settings
from django.db import connection


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


class SessionQueryCountMiddleware:
    """Adds ``X-Session-DB-Queries: N``: the SQL queries this request sent to the session
    table (loading, saving or deleting the session). A session read from the cache costs 0.

    It sits above SessionMiddleware, so it also counts the save at the end of the request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        count = 0

        def count_session_queries(execute, sql, params, many, context):
            nonlocal count
            if "django_session" in sql:
                count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count_session_queries):
            response = self.get_response(request)
        response["X-Session-DB-Queries"] = str(count)
        return response
