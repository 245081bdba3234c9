"""The test balancer itself (tests/balancer.py): the pg-s3-lb run means something only if every
new connection goes to the next node and bytes, half-closes included, pass unchanged."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from support.balancer import Balancer


class Upstream:
    """A TCP listener that reads until EOF, then answers `<index>:<bytes read>` and closes."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                received = b""
                try:
                    while chunk := conn.recv(65536):
                        received += chunk
                    conn.sendall(f"{self.index}:{len(received)}".encode())
                except OSError:
                    pass


@pytest.fixture
def upstreams() -> Iterator[list[Upstream]]:
    ups = [Upstream(i) for i in range(3)]
    yield ups
    for up in ups:
        up.sock.close()


def exchange(port: int, payload: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply.decode()


def test_each_new_connection_goes_to_the_next_node_and_half_close_passes(upstreams):
    balancer = Balancer([up.port for up in upstreams]).start()
    try:
        payload = os.urandom(3 << 20)
        replies = [exchange(balancer.port, payload) for _ in range(6)]
    finally:
        balancer.stop()
    nodes = [int(r.split(":")[0]) for r in replies]
    assert all(r.split(":")[1] == str(len(payload)) for r in replies), replies
    assert sorted(nodes[:3]) == [0, 1, 2] and nodes[3:] == nodes[:3], nodes


def test_a_node_that_refuses_connections_is_skipped(upstreams):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        balancer = Balancer([upstreams[0].port, dead.getsockname()[1]]).start()
        try:
            replies = [exchange(balancer.port, b"x") for _ in range(4)]
        finally:
            balancer.stop()
    finally:
        dead.close()
    assert replies == ["0:1"] * 4
