"""A stand-in for the vendor CRM (shaped like Zoho CRM's API), run as its own process.

It behaves like the real one where the lab needs it to:
- OAuth: POST /oauth/v2/token with grant_type=refresh_token and the client's
  credentials grants an access token that expires (expires_in seconds).
- A token rate limit: at most --token-limit grants per --window seconds; past that
  it answers 400 {"error": "Access Denied", ...} as the vendor does.
- API calls need `Authorization: Zoho-oauthtoken <token>`; an unknown or expired
  token gets 401 {"code": "INVALID_TOKEN"}.
GET /_workshop/stats returns its counters; POST /_workshop/reset clears them.

    python -m workshop.crm_server --port 8089 --token-limit 1 --window 600
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CLIENT_ID = "workshop-client"
CLIENT_SECRET = "workshop-secret"
REFRESH_TOKEN = "workshop-refresh-token"


class CRMState:
    def __init__(self, token_limit: int, window_seconds: float, token_ttl: int):
        self.token_limit = token_limit
        self.window_seconds = window_seconds
        self.token_ttl = token_ttl
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.grant_times: deque[float] = deque()
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.contacts: dict[str, dict] = {}
        self.counters = {"grants": 0, "refused": 0, "api_calls": 0, "invalid_token": 0}

    def grant(self) -> dict | None:
        with self.lock:
            now = time.monotonic()
            while self.grant_times and now - self.grant_times[0] > self.window_seconds:
                self.grant_times.popleft()
            if len(self.grant_times) >= self.token_limit:
                self.counters["refused"] += 1
                return None
            self.grant_times.append(now)
            self.counters["grants"] += 1
            token = "1000." + secrets.token_hex(16)
            self.tokens[token] = now + self.token_ttl
            return {
                "access_token": token,
                "api_domain": "",
                "token_type": "Bearer",
                "expires_in": self.token_ttl,
            }

    def token_is_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
            valid = expiry is not None and expiry > time.monotonic()
            if valid:
                self.counters["api_calls"] += 1
            else:
                self.counters["invalid_token"] += 1
            return valid

    def stats(self) -> dict:
        with self.lock:
            return dict(self.counters, token_limit=self.token_limit, window_seconds=self.window_seconds)


def make_handler(state: CRMState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            print(f"{self.address_string()} {fmt % args}", flush=True)

        def _reply(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/_workshop/stats":
                self._reply(200, state.stats())
            elif self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"code": "NOT_FOUND"})

        def do_POST(self) -> None:
            if self.path == "/oauth/v2/token":
                self._token(parse_qs(self._body().decode()))
            elif self.path == "/_workshop/reset":
                with state.lock:
                    state.reset()
                self._reply(200, {"status": "reset"})
            elif self.path.startswith("/crm/v2/Contacts"):
                self._upsert_contact()
            else:
                self._reply(404, {"code": "NOT_FOUND"})

        def _token(self, form: dict[str, list[str]]) -> None:
            field = lambda name: (form.get(name) or [""])[0]  # noqa: E731
            if field("grant_type") != "refresh_token" or field("refresh_token") != REFRESH_TOKEN:
                self._reply(400, {"error": "invalid_code"})
                return
            if field("client_id") != CLIENT_ID or field("client_secret") != CLIENT_SECRET:
                self._reply(400, {"error": "invalid_client"})
                return
            granted = state.grant()
            if granted is None:
                self._reply(
                    400,
                    {
                        "error": "Access Denied",
                        "error_description": "You have made too many requests continuously. "
                        "Please try again after some time.",
                    },
                )
                return
            self._reply(200, granted)

        def _upsert_contact(self) -> None:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            body = self._body()
            if scheme != "Zoho-oauthtoken" or not state.token_is_valid(token):
                self._reply(401, {"code": "INVALID_TOKEN", "message": "invalid oauth token", "status": "error"})
                return
            records = json.loads(body or b"{}").get("data", [])
            details = []
            with state.lock:
                for record in records:
                    key = str(record.get("Account_Name") or record.get("Email") or len(state.contacts))
                    contact_id = state.contacts.setdefault(key, {"id": secrets.token_hex(6)})["id"]
                    details.append(
                        {
                            "code": "SUCCESS",
                            "details": {"id": contact_id},
                            "message": "record upserted",
                            "status": "success",
                        }
                    )
            self._reply(200, {"data": details})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    # 0.0.0.0 where other machines must reach it: a pod of the kind cluster (k8s/20-crm.yaml)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--token-limit", type=int, default=10, help="grants per window (the vendor allows 10 per 10 minutes)"
    )
    parser.add_argument("--window", type=float, default=600.0, help="seconds")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime, seconds")
    args = parser.parse_args(argv)
    state = CRMState(args.token_limit, args.window, args.token_ttl)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    limit = f"token limit {args.token_limit}/{args.window:g}s"
    print(f"CRM stand-in on http://{args.host}:{args.port} ({limit})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
