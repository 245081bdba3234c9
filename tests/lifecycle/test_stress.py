"""Several clients push images sharing layers while GC and retention run in a loop; afterwards
every tagged image pulls, every digest verifies, and no blob row lacks its bytes."""

from __future__ import annotations

import random
import threading
import time
import uuid

from support.http import describe, http
from support.oci import (
    OCI_LAYER_GZIP,
    Blob,
    blob_url,
    list_tags,
    make_image,
    pull_and_verify,
    push_blob,
    put_manifest,
    random_bytes,
)

from .helpers import store_consistency

CLIENTS = 4
SECONDS = 15


def _client(reg, ns: str, shared: list[Blob], n: int, stop: threading.Event,
            stats: dict, errors: list) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(n)
    i = 0
    while not stop.is_set():
        repo = f"{ns}/r{rng.randrange(3)}"
        layers = [rng.choice(shared), Blob(random_bytes(2048), OCI_LAYER_GZIP)]
        image = make_image(layer_blobs=layers)
        try:
            for attempt in range(3):
                for b in image.blobs:
                    # Like real clients: skip what the registry says it has.
                    if http.head(blob_url(reg, repo, b.digest)).status_code != 200:
                        push_blob(reg, repo, b.data)
                if rng.random() < 0.3:
                    time.sleep(0.5)  # GC runs between the blob upload and the manifest push
                r = put_manifest(reg, repo, f"c{n}-{i % 4}", image.body, image.media_type)
                if r.status_code == 201:
                    stats["pushed"] += 1
                    break
                # A blob seen by HEAD can be collected before the manifest arrives (it was
                # unreferenced for longer than the grace period): the push is refused cleanly.
                assert r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text, describe(r)
                stats["refused"] += 1
            i += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(repr(exc))
            return


def _collector(cli, ns: str, stop: threading.Event, stats: dict, errors: list) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        try:
            report = cli.gc("1s")
            stats["gc_runs"] += 1
            stats["blobs_collected"] += report["blobs"]
            stats["manifests_collected"] += report["manifests"]
            cli.json("retention", "apply", ns)
            stats["retention_runs"] += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
            return


def test_pushes_with_gc_and_retention_in_a_loop_lose_nothing(lc):
    reg, cli = lc
    ns = "stress" + uuid.uuid4().hex[:8]
    cli.run("retention", "set", ns, "--keep-last-pushed", "5")
    shared = [Blob(random_bytes(4096), OCI_LAYER_GZIP) for _ in range(3)]
    stop = threading.Event()
    stats = {"pushed": 0, "refused": 0, "gc_runs": 0, "blobs_collected": 0,
             "manifests_collected": 0, "retention_runs": 0}
    errors: list[str] = []
    threads = [threading.Thread(target=_client, args=(reg, ns, shared, n, stop, stats, errors))
               for n in range(CLIENTS)]
    threads.append(threading.Thread(target=_collector, args=(cli, ns, stop, stats, errors)))
    for t in threads:
        t.start()
    # At least SECONDS of load and two full collections, however slow a CLI start is on this box.
    started = time.monotonic()
    while time.monotonic() - started < SECONDS or (
        stats["retention_runs"] < 2 and time.monotonic() - started < 8 * SECONDS and not errors
    ):
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert stats["pushed"] > 20 and stats["gc_runs"] >= 2, stats
    assert stats["manifests_collected"] > 0 and stats["blobs_collected"] > 0, stats

    # one more collection with nothing in flight, then everything tagged must be whole
    cli.gc("0")
    pulled = 0
    for r in range(3):
        resp = list_tags(reg, f"{ns}/r{r}")
        if resp.status_code == 404:
            continue
        for tag in resp.json()["tags"]:
            pull_and_verify(reg, f"{ns}/r{r}", tag)
            pulled += 1
    assert pulled > 0
    assert store_consistency(reg.data_dir) == {"missing_bytes": [], "dangling_refs": []}
    print(stats)
