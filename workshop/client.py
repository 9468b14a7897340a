"""An HTTP client that uses cms the way a browser does: cookies, CSRF, form posts.

It remembers which node and worker served every response (the X-Served-By header),
so a check can prove its requests really reached every node.
"""

from __future__ import annotations

from collections import Counter

import httpx

DEFAULT_PASSWORD = "workshop"  # the lab users' password, set by `manage.py seed_workshop`


class CMSClient:
    def __init__(self, base_url: str, timeout: float = 30):
        self.http = httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=False)
        self.served_by: Counter[str] = Counter()  # "node-1/1234" -> responses

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "CMSClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def nodes_seen(self) -> set[str]:
        return {served.split("/")[0] for served in self.served_by}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if "X-Served-By" in response.headers:
            self.served_by[response.headers["X-Served-By"]] += 1
        return response

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: dict | None = None) -> httpx.Response:
        """POST a form with the CSRF token, as the browser would after loading the page."""
        if "csrftoken" not in self.http.cookies:
            self.get("/login/")
        form = {"csrfmiddlewaretoken": self.http.cookies["csrftoken"], **(data or {})}
        return self.request("POST", path, data=form, headers={"Referer": str(self.http.base_url)})

    def login(self, username: str, password: str = DEFAULT_PASSWORD) -> httpx.Response:
        self.get("/login/")
        response = self.post_form("/login/", {"username": username, "password": password})
        if response.status_code != 302:
            raise AssertionError(f"login as {username} failed: HTTP {response.status_code}")
        return response

    def logout(self) -> httpx.Response:
        return self.post_form("/logout/")

    def audit_report(self) -> dict:
        response = self.get("/audit/report.json")
        response.raise_for_status()
        return response.json()
