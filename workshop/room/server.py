"""The room's web server: the facilitator's page and a small JSON API, on the standard library's
threaded HTTP server (as the CRM stand-in is), so it needs nothing beyond Python and runs in a
thread of a test as well as in `workshop room serve`.

    GET  /              the page (no data in it: it reads /api/room with the key from its URL)
    GET  /api/room      what the page shows (view.py)     Authorization: Bearer <facilitator key>
    POST /api/join      {"code", "name"?} -> 201 {"attendee", "name", "token", "labs"}
    POST /api/results   {"lab", "results": [...]}         Authorization: Bearer <attendee token>
    POST /api/leave     forget this attendee              Authorization: Bearer <attendee token>

Every refusal is a JSON {"error": "..."} with its HTTP status (400 malformed, 401 no or unknown
token, 403 wrong join code, 404, 405, 409 room full, 411, 413 too large, 415 not JSON, 422 a
value the room does not know, 429 too many). Bodies are JSON of at most MAX_BODY bytes, and
only POSTs of `application/json` count, which a web page of another site cannot send here.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from workshop.room.state import Room, RoomError
from workshop.room.view import view

MAX_BODY = 4096
PAGE = Path(__file__).with_name("page.html")


class RoomServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a room joins at once

    def __init__(self, room: Room, host: str, port: int = 0, snapshot: Path | None = None, shown_host: str = ""):
        self.room = room
        self.snapshot = snapshot
        self.shown_host = shown_host  # the address attendees type, when `host` is not one (0.0.0.0)
        self.save_lock = threading.Lock()
        super().__init__((host, port), Handler)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.shown_host or host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def facilitator_url(self) -> str:
        """The page with its key in the fragment: browsers never send a fragment to a server."""
        return f"{self.url}/#key={self.room.key}"

    def save(self) -> None:
        """The room as a JSON file (no attendee token in it, only their hashes), for a restart."""
        if self.snapshot is None:
            return
        data = {**self.room.to_dict(), "host": self.server_address[0], "port": self.server_address[1]}
        data["saved"] = time.time()
        with self.save_lock:
            self.snapshot.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.snapshot.with_suffix(".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(data, handle)
            temporary.replace(self.snapshot)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: RoomServer
    server_version = "workshop-room"
    sys_version = ""
    timeout = 10  # a connection that sends nothing does not hold a thread for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """No access log: the terminal shows joins and leaves (Room.on_event)."""

    def handle_one_request(self) -> None:
        """A bug in the room answers 500 in JSON (its traceback goes to the facilitator's terminal)."""
        try:
            super().handle_one_request()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            try:
                self.send_json(500, {"error": "the room failed on this request: the facilitator's terminal says why"})
            except OSError:
                pass

    # -- routing ------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/":
            self.page()
        elif path == "/api/room":
            if not self.server.room.is_facilitator(self.bearer()):
                self.fail(
                    RoomError(401, "the room's data needs the facilitator's key (`workshop room serve` prints it)")
                )
            else:
                self.send_json(200, view(self.server.room, self.server.address))
        elif path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
        elif path in POSTS:
            self.fail(RoomError(405, f"{path} takes POST"), allow="POST")
        else:
            self.fail(RoomError(404, f"no such page: {path[:60]}"))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            body = self.read_body()  # first, always: an unread body would reset the connection
            if path not in POSTS:
                if path in ("/", "/api/room"):
                    raise RoomError(405, f"{path} takes GET")
                raise RoomError(404, f"no such page: {path[:60]}")
            status, answer = POSTS[path](self, self.parse_json(body))
        except RoomError as error:
            self.fail(error)
            return
        self.server.save()
        self.send_json(status, answer)

    # -- the API --------------------------------------------------------------------------
    def join(self, body: object) -> tuple[int, dict]:
        attendee, token = self.server.room.join(body, self.client_address[0])
        labs = self.server.room.agenda.labs
        return 201, {"attendee": attendee.id, "name": attendee.name, "token": token, "labs": labs}

    def results(self, body: object) -> tuple[int, dict]:
        attendee = self.server.room.record(self.bearer(), body)
        return 200, {"ok": True, "current": attendee.current}

    def leave(self, _body: object) -> tuple[int, dict]:
        attendee = self.server.room.leave(self.bearer())
        return 200, {"ok": True, "left": attendee.id}

    # -- requests and answers ---------------------------------------------------------------
    def bearer(self) -> str | None:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RoomError(411, "a Content-Length is needed")
        if not length.isdigit():
            raise RoomError(400, "a Content-Length is a number")
        if int(length) > MAX_BODY:
            if int(length) <= 16 * MAX_BODY:
                self.rfile.read(int(length))  # read it, so the client sees the answer rather than a reset
            raise RoomError(413, f"a request body has at most {MAX_BODY} bytes")
        return self.rfile.read(int(length))

    def parse_json(self, body: bytes) -> object:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            raise RoomError(415, "send JSON (Content-Type: application/json)")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RoomError(400, f"the body is not valid JSON: {str(exc)[:80]}") from None

    def send_json(self, status: int, data: dict, **headers: str) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-").title(), value)
        self.end_headers()
        self.wfile.write(body)

    def fail(self, error: RoomError, **headers: str) -> None:
        if error.retry_after:
            headers["retry_after"] = str(error.retry_after)
        self.send_json(error.status, {"error": error.message}, **headers)

    def page(self) -> None:
        nonce = secrets.token_urlsafe(12)
        body = PAGE.read_text().replace("{{nonce}}", nonce).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
            "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        self.end_headers()
        self.wfile.write(body)


POSTS = {"/api/join": Handler.join, "/api/results": Handler.results, "/api/leave": Handler.leave}


def lan_address() -> str | None:
    """This machine's address on the local network: the source address of the default route
    (a UDP socket's connect sends nothing), else the host name's; None when only loopback."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    return next((address for address in candidates if not address.startswith(("127.", "0."))), None)
