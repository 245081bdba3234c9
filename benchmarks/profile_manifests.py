#!/usr/bin/env python3
"""Profile Moorage under manifest load with py-spy: PUT by tag (8 clients) or GET (wrk, 8 conns).

    .venv/bin/python benchmarks/profile_manifests.py put [--seconds 20] [--no-auth]
    .venv/bin/python benchmarks/profile_manifests.py get [--seconds 15]
    .venv/bin/python benchmarks/profile_manifests.py summary FILE.txt   # re-read a raw profile

Starts `moorage serve` the way benchmarks/run.py does (defaults, auth on unless --no-auth),
pushes the small image, then samples the whole process tree (`py-spy record --subprocesses
-f raw --nonblocking`) while the load runs and prints the top self-time and cumulative frames,
all and ours (moorage/) only. Needs `pip install py-spy`. The raw profile is kept (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import run as bench

OURS = ("moorage/",)


def summarise(raw: Path, top: int) -> str:
    """Top self and cumulative frames of a py-spy raw (collapsed stacks) file."""
    self_t: collections.Counter[str] = collections.Counter()
    cum: collections.Counter[str] = collections.Counter()
    ours_self: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        self_t[frames[-1]] += count
        for f in set(frames):
            cum[f] += count
        # self time charged to the innermost frame of ours: what our code costs, libraries included
        mine = next((f for f in reversed(frames) if any(o in f for o in OURS)), None)
        if mine:
            ours_self[mine] += count
    out = [f"{total} samples"]

    def block(title: str, counter: collections.Counter[str], only_ours: bool = False) -> None:
        out.append(f"\n== {title}")
        items = [
            (f, c) for f, c in counter.most_common() if not only_ours or any(o in f for o in OURS)
        ]
        for f, c in items[:top]:
            out.append(f"{100 * c / total:6.1f} %  {f[:150]}")

    block("self time (leaf frame)", self_t)
    block("cumulative (frame anywhere on the stack), ours", cum, only_ours=True)
    block("cumulative, all", cum)
    block("inclusive self of our innermost frame (our line + the libraries it calls)", ours_self)
    return "\n".join(out)


def put_load(s: bench.Server, seconds: float, clients: int) -> int:
    """PUT the small manifest under new tags from `clients` clients for `seconds`; return count."""
    import aiohttp

    manifest = bench.push_small_image(s, bench.TAGS_REPO, "t0")
    auth = s.auth(bench.TAGS_REPO)
    done = [0]

    async def main() -> None:
        end = time.monotonic() + seconds
        counter = iter(range(1, 10**9))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as sess:

            async def worker() -> None:
                while time.monotonic() < end:
                    u = f"{s.url}/v2/{bench.TAGS_REPO}/manifests/p{next(counter)}"
                    headers = {"Content-Type": bench.OCI_MANIFEST, **auth}
                    async with sess.put(u, data=manifest, headers=headers) as r:
                        await r.read()
                        if r.status != 201:
                            raise RuntimeError(f"PUT {u} -> {r.status}")
                    done[0] += 1

            await asyncio.gather(*(worker() for _ in range(clients)))

    asyncio.run(main())
    return done[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["put", "get", "summary"])
    p.add_argument("file", nargs="?", help="raw profile to summarise (summary)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--no-auth", action="store_true")
    p.add_argument("--no-spy", action="store_true", help="no profiler: just req/s and CPU/request")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to count CPU after the load")
    p.add_argument(
        "--gil", action="store_true", help="only samples holding the GIL (CPU in Python)"
    )
    p.add_argument("--out", help="raw profile path (default: benchmarks/results/profile-WHAT.txt)")
    p.add_argument("--moorage-bin", default=str(Path(sys.executable).with_name("moorage")))
    p.add_argument("--moorage-arg", action="append", default=[])
    p.add_argument(
        "--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    )
    args = p.parse_args()
    if args.what == "summary":
        print(summarise(Path(args.file), args.top))
        return 0
    out = Path(args.out or bench.RESULTS_DIR / f"profile-{args.what}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="moorage-profile-"))
    s = bench.make_moorage(SimpleNamespace(moorage_bin=args.moorage_bin, moorage_arg=args.moorage_arg,
                                           no_auth=args.no_auth), root)  # fmt: skip
    try:
        if not s.start():
            print(s.start_error, file=sys.stderr)
            return 1
        time.sleep(1.0)
        if args.what == "get":
            bench.push_small_image(s, bench.SMALL_REPO, bench.SMALL_TAG)
        spy = None
        if not args.no_spy:
            cmd = [args.py_spy, "record", "--subprocesses", "--nonblocking", "-f", "raw",
                   "-r", str(args.rate), "-d", str(int(args.seconds) + 2), "-o", str(out),
                   "-p", str(s.proc.pid), *(["--gil"] if args.gil else [])]  # fmt: skip
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # py-spy attaches
        cpu0, t0 = s.sample(), time.perf_counter()
        if args.what == "put":
            n = put_load(s, args.seconds, args.clients)
        else:
            ctx = SimpleNamespace(root=root, args=SimpleNamespace(
                wrk_bin=shutil.which("wrk") or "wrk", wrk_threads=2, concurrency=args.clients,
                duration=int(args.seconds)))  # fmt: skip
            url = f"{s.url}/v2/{bench.SMALL_REPO}/manifests/{bench.SMALL_TAG}"
            n = bench.load_wrk(ctx, url, "GET", s.auth(bench.SMALL_REPO, "pull"))["requests"]
        dt, cpu = time.perf_counter() - t0, s.sample() - cpu0
        time.sleep(args.settle)  # background consumers finish the events of the load
        cpu_all = s.sample() - cpu0
        print(f"RESULT {args.what} {n / dt:.1f} req/s, {1000 * cpu / max(n, 1):.3f} ms CPU/req "
              f"during, {1000 * cpu_all / max(n, 1):.3f} ms with {args.settle:.0f} s after "
              f"({n} requests in {dt:.1f} s{', under py-spy' if spy else ''})")  # fmt: skip
        if spy is not None:
            _, err = spy.communicate(timeout=120)
            if spy.returncode:
                print(f"py-spy failed: {err.decode()[-2000:]}", file=sys.stderr)
                return 1
            print(summarise(out, args.top))
            print(f"\nraw profile: {out}")
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
