"""Workers that start together and each find no key file all end up with the one key: none
reads a key file that exists but is still being written (a worker died of it in CI)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from moorage.auth.sealing import _key_file


def _read_key(path: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
              ) -> None:
    barrier.wait()
    try:
        out.put(_key_file(Path(path)))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"{type(exc).__name__}: {exc}")


def test_racing_first_starts_share_one_complete_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(30):
        path = tmp_path / f"round{round_}" / "secrets.key"
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_read_key, args=(str(path), barrier, out)) for _ in range(6)]
        for p in procs:
            p.start()
        got = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
        assert all(isinstance(k, bytes) for k in got), got
        assert len(set(got)) == 1 and len(got[0]) == 32
        assert sorted(f.name for f in path.parent.iterdir()) == ["secrets.key"]
