"""A fault-injecting HTTP/1.1 TCP proxy between a registry and its upstream, on threads.

It reads each request's head (and its Content-Length body), records (method, path), and either
forwards it or, on demand, answers it itself with a status (429/503, with Retry-After) or cuts
the connection. Answers can be slowed to `rate` bytes per second, so a test sees a transfer that
is still going on.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field

from support.servers import free_port

_CHUNK = 16 * 1024


@dataclass
class FaultProxy:
    """A proxy on 127.0.0.1:`port` to 127.0.0.1:`target`."""

    target: int
    port: int = field(default_factory=free_port)
    status: int | None = None  # answer every request with this status instead of forwarding
    retry_after: int | None = None
    cut: bool = False  # close every connection as soon as a request arrives
    hang: bool = False  # take requests and never answer them
    rate: float | None = None  # bytes per second of answers (None: as fast as they come)
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def heal(self) -> None:
        """Forward everything again, at full speed."""
        self.status, self.retry_after, self.cut, self.rate = None, None, False, None
        self.hang = False

    def count(self, method: str, pattern: str = "") -> int:
        """How many `method` requests had a path matching the regex `pattern`."""
        with self._lock:
            return sum(1 for m, p in self.seen if m == method and re.search(pattern, p))

    def total(self) -> int:
        with self._lock:
            return len(self.seen)

    # -- the relay --------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                while len(buffer) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.seen.append((method, path.split("?")[0]))
                if self.cut:
                    return
                if self.hang:
                    continue
                if self.status is not None:
                    client.sendall(self._fault(method))
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                    threading.Thread(target=self._down, args=(upstream, client),
                                     daemon=True).start()
                upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()

    def _fault(self, method: str) -> bytes:
        code = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(self.status or 0, "UNKNOWN")
        body = json.dumps({"errors": [{"code": code, "message": "injected by the test"}]})
        payload = b"" if method == "HEAD" else body.encode()
        headers = [f"HTTP/1.1 {self.status} Injected", "Content-Type: application/json",
                   f"Content-Length: {len(body)}"]
        if self.retry_after is not None:
            headers.append(f"Retry-After: {self.retry_after}")
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(_CHUNK):
                if self.rate:
                    for i in range(0, len(data), 4096):
                        client.sendall(data[i:i + 4096])
                        time.sleep(4096 / self.rate)
                else:
                    client.sendall(data)
        except OSError:
            pass
        finally:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
