#!/usr/bin/env python3
"""CPU, statements and write-lock time per manifest PUT and GET, in-process (no HTTP).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/service_costs.py [-n 2000] [--json OUT]

Wall clock is noise on a loaded machine; `time.process_time()` per operation is far steadier.
Builds an embedded registry through `bootstrap` (SQLite + files in a temp dir), pushes a small
image's blobs once, then times N tag pushes (`front.manifests.push`, as the /v2/ handler calls
it, with an actor so audit events are written) and N GETs by tag and by digest (`pull`). Prints
medians: CPU µs per op, SQLite statements per op, µs inside the SQLite write lock per PUT
(wall, and the holding thread's CPU, which is steadier under load).
Run it against another tree with that tree's `src` on PYTHONPATH to compare (A B A B).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Counters:
    """Statements executed and time inside the write lock, reset per operation."""

    def __init__(self) -> None:
        self.statements = 0
        self.lock_seconds = 0.0
        self.lock_cpu = 0.0


def _instrument(registry: Any, counters: Counters) -> None:
    from sqlalchemy import event

    from moorage.metadata import base

    def _count(_sql: str) -> None:
        counters.statements += 1

    # SQLite's own trace (every statement it runs, BEGIN and COMMIT too, each row of an
    # executemany), not a cursor event: a cursor-event listener would change what is measured.
    def _trace(dbapi_conn: Any, *_args: object) -> None:
        dbapi_conn.set_trace_callback(_count)

    event.listen(registry.database.engine, "checkout", _trace)
    held = getattr(getattr(registry.database, "_readers", None), "conn", None)
    if held is not None:  # a thread's read connection, checked out before this point
        _trace(held.connection.driver_connection)

    lock = registry.database._write_lock
    if not isinstance(lock, base.SqliteWriteLock):
        return
    enter, leave = type(lock).__enter__, type(lock).__exit__
    started: list[tuple[float, float]] = []

    class Timed(type(lock)):  # type: ignore[misc]
        def __enter__(self) -> None:
            enter(self)
            started.append((time.perf_counter(), time.thread_time()))

        def __exit__(self, *exc: object) -> None:
            wall, cpu = started.pop()
            counters.lock_seconds += time.perf_counter() - wall
            counters.lock_cpu += time.thread_time() - cpu
            leave(self, *exc)

    lock.__class__ = Timed


def _measure(counters: Counters, op: Any, n: int) -> dict[str, float]:
    cpu: list[float] = []
    statements: list[int] = []
    locked: list[float] = []
    locked_cpu: list[float] = []
    for i in range(n):
        counters.statements, counters.lock_seconds, counters.lock_cpu = 0, 0.0, 0.0
        t0 = time.process_time()
        op(i)
        cpu.append(time.process_time() - t0)
        statements.append(counters.statements)
        locked.append(counters.lock_seconds)
        locked_cpu.append(counters.lock_cpu)
    return {
        "cpu_us": round(statistics.median(cpu) * 1e6, 1),
        "cpu_mean_us": round(statistics.fmean(cpu) * 1e6, 1),
        "statements": statistics.median(statements),
        "lock_us": round(statistics.median(locked) * 1e6, 1),
        "lock_cpu_us": round(statistics.median(locked_cpu) * 1e6, 1),
    }


def run(n: int) -> dict[str, Any]:
    """Measure every operation on a fresh registry; the medians per operation."""
    from moorage.bootstrap import open_registry, prepare
    from moorage.config import Settings
    from moorage.events.types import Actor
    from moorage.oci.digest import parse_digest

    with tempfile.TemporaryDirectory(prefix="service-costs-") as tmp:
        settings = Settings.from_env({}, data_dir=Path(tmp) / "registry", auth=False)
        prepare(settings)
        registry = open_registry(settings)
        try:
            repository = "bench/app"
            manifests = registry.front.manifests
            config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
            layer = b"layer" * 1000

            async def body(data: bytes) -> Any:
                yield data

            for data in (config, layer):
                asyncio.run(registry.uploads.push_whole(
                    repository, parse_digest(_digest(data)), body(data), len(data)))

            def manifest(i: int) -> bytes:
                return json.dumps({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": _digest(config), "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": _digest(layer), "size": len(layer)}],
                    "annotations": {"build": str(i)},
                }).encode()

            counters = Counters()
            _instrument(registry, counters)
            actor = Actor("bench", "user", "127.0.0.1")
            loop = asyncio.new_event_loop()
            bodies = [manifest(i) for i in range(n + 50)]
            for i in range(50):  # warm up: caches, compiled statements
                loop.run_until_complete(manifests.push(repository, f"warm{i}", bodies[n + i],
                                                       OCI_MANIFEST, [], actor))
            results: dict[str, Any] = {}
            results["put_tag"] = _measure(counters, lambda i: loop.run_until_complete(
                manifests.push(repository, f"t{i}", bodies[i], OCI_MANIFEST, [], actor)), n)
            digest = parse_digest(_digest(bodies[0]))
            results["get_tag"] = _measure(counters, lambda i: loop.run_until_complete(
                manifests.pull(repository, f"t{i}", True, actor)), n)
            results["get_digest"] = _measure(counters, lambda i: loop.run_until_complete(
                manifests.pull(repository, digest, True, actor)), n)
            results["head_tag"] = _measure(counters, lambda i: loop.run_until_complete(
                manifests.pull(repository, f"t{i}", False, None)), n)
            loop.close()
            return results
        finally:
            registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="operations of each kind")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.n)
    for name, row in results.items():
        print(f"{name:11} cpu {row['cpu_us']:8.1f} µs (mean {row['cpu_mean_us']:8.1f})  "
              f"statements {row['statements']:4}  write lock {row['lock_us']:8.1f} µs "
              f"(CPU {row['lock_cpu_us']:7.1f} µs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
