"""Delta push: `moorage push` of a model's second version (5 % of its tensors changed) to a
registry holding the first, against a full push of that version to an empty registry, and
`moorage pull` of it with and without the first version's chunks cached.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/delta.py [--mib 1024]

Two servers (`--no-auth`, 1 worker, SQLite + files) in a temporary directory; the model is the
tests' synthetic safetensors file (1 MiB tensors), written to disk first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from chunks import start  # the dedup benchmark's server
from support.weights import safetensors_parts


def write_model(root: Path, mib: int, version: int) -> Path:
    root.mkdir(parents=True)
    with (root / "model.safetensors").open("wb") as f:
        for part in safetensors_parts(mib << 20, version=version):
            f.write(part)
    return root


def moorage(*args: str) -> float:
    """Seconds one `moorage` command takes."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "moorage", *args, "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=4)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moorage-delta-bench-") as tmp:
        root = Path(tmp)
        v0, v1 = write_model(root / "v0", opts.mib, 0), write_model(root / "v1", opts.mib, 1)
        servers = [start(root / "full"), start(root / "delta")]
        try:
            (_, full), (_, delta) = servers
            par = ["--parallel", str(opts.parallel)]
            t_full = moorage("push", str(v1), "m/model:v1", "--registry", full, *par)
            t_base = moorage("push", str(v0), "m/model:v0", "--registry", delta, *par)
            t_delta = moorage("push", str(v1), "m/model:v1", "--registry", delta, *par)
            cache = str(root / "cache")
            t_pull0 = moorage("pull", "m/model:v0", str(root / "p0"), "--registry", delta,
                              "--cache", cache)
            t_pull1 = moorage("pull", "m/model:v1", str(root / "p1"), "--registry", delta,
                              "--cache", cache)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait()
    print(f"{opts.mib} MiB model, second version with 5 % of its tensors changed")
    print(f"  full push of v1 (empty registry): {t_full:7.2f} s")
    print(f"  push of v0 (empty registry):      {t_base:7.2f} s")
    print(f"  delta push of v1 (v0 held):       {t_delta:7.2f} s  ({t_full / t_delta:.1f}x)")
    print(f"  pull of v0 (empty cache):         {t_pull0:7.2f} s")
    print(f"  pull of v1 (v0's chunks cached):  {t_pull1:7.2f} s")


if __name__ == "__main__":
    main()
