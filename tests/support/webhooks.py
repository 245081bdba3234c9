"""A webhook receiver for the tests: an http.server thread on 127.0.0.1 that records every
request, answers 204, or a chosen status while `failing`, and can be stopped and started again
on the same port (a receiver that is down). Plus an independent Standard Webhooks check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """Records requests; `fail_status` (e.g. 503) is answered while set, else 204."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_status: int | None = None
        self.fail_when: Any = None  # optional predicate(Received-to-be) → answer fail_status
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        """Listen (again, on the same port once it had one)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    status = 204
                    if receiver.fail_status is not None and (
                            receiver.fail_when is None
                            or receiver.fail_when(json.loads(body))):
                        status = receiver.fail_status
                    receiver.requests.append(Received(headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening (connections are refused until `start`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Received]:
        """The requests answered with success, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def wait(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Wait until `count` requests were answered with success; those requests."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.delivered()
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, (
                f"{len(got)} of {count} webhook requests arrived; all: "
                f"{[(r.status, r.event.get('type')) for r in self.requests]}")
            time.sleep(0.05)


def verify(secret: str, request: Received, tolerance: float = 300.0) -> bool:
    """The Standard Webhooks check, written from the spec independently of the server's code."""
    key = (base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_")
           else secret.encode())
    message_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = base64.b64encode(hmac.new(
        key, f"{message_id}.{timestamp}.".encode() + request.body, hashlib.sha256).digest())
    for part in request.headers.get("webhook-signature", "").split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False
