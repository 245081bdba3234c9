"""Online GC at grace 0 racing concurrent pushers must never break an acknowledged image.

Clients push images sharing base layers, move tags, re-tag older manifests and delete manifests
and tags, while GC at grace 0 runs in a loop against the live database and storage (two runs at
a time, built the way `moorage gc` builds its collector, then once more by the CLI). A push may
be refused (MANIFEST_BLOB_UNKNOWN: its blob was collected before the manifest came), but
every manifest a client was told is stored and still tagged must afterwards pull byte-identical,
with each blob it references. Run on SQLite + files, PostgreSQL + files, PostgreSQL + S3.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests
from support.oci import (
    ACCEPT_MANIFESTS,
    OCI_LAYER_GZIP,
    Blob,
    Manifest,
    blob_url,
    describe,
    http,
    make_image,
    manifest_url,
    put_manifest,
    random_bytes,
    upload_post_put,
)

CLIENTS = 4
SECONDS = 30
REPOS = 2
TAGS = 10  # per client: most acknowledged images stay tagged, so most get checked


@dataclass
class Ledger:
    """What the clients were told: tag -> manifest, and the bytes of every blob pushed."""

    tags: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {
        "pushed": 0, "refused": 0, "retagged": 0, "deleted": 0, "untagged": 0, "gc_runs": 0,
        "gc_blobs": 0, "gc_links": 0, "gc_manifests": 0})
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bump(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n


def _ensure_blobs(reg, repo: str, image: Manifest, ledger: Ledger) -> None:  # type: ignore[no-untyped-def]
    for b in image.blobs:
        ledger.blobs[b.digest] = b.data
        # Like real clients: skip what the registry says this repository has.
        if http.head(blob_url(reg, repo, b.digest)).status_code == 200:
            continue
        r = upload_post_put(reg, repo, b.data)
        assert r.status_code == 201, f"upload of {b.digest}: {describe(r)}"


def _put(reg, repo: str, tag: str, image: Manifest, ledger: Ledger,  # type: ignore[no-untyped-def]
         own: dict[tuple[str, str], Manifest]) -> bool:
    """PUT a manifest under `tag`; record it when acknowledged. False when refused cleanly."""
    key = (repo, tag)
    try:
        r = put_manifest(reg, repo, tag, image.body, image.media_type)
    except requests.RequestException:
        own.pop(key, None)  # unknown outcome: this tag is not checked
        raise
    if r.status_code == 201:
        own[key] = image
        return True
    # A blob the client saw can be collected before its manifest arrives: a clean refusal.
    assert r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text, describe(r)
    ledger.bump("refused")
    return False


def _client(reg, ns: str, bases: list[Blob], n: int, stop: threading.Event,  # type: ignore[no-untyped-def]
            ledger: Ledger) -> None:
    rng = random.Random(n)
    mine: list[tuple[str, Manifest]] = []  # every manifest this client pushed, by repository
    tags = [f"c{n}-{k}" for k in range(TAGS)]
    own: dict[tuple[str, str], Manifest] = {}  # this client's tags: only it moves them
    try:
        while not stop.is_set():
            repo = f"{ns}/r{rng.randrange(REPOS)}"
            roll = rng.random()
            held = list(own.items())
            if roll < 0.15 and mine:
                # Re-tag an older manifest (maybe untagged and collectable by now).
                repo, image = rng.choice(mine)
                _ensure_blobs(reg, repo, image, ledger)
                if _put(reg, repo, rng.choice(tags), image, ledger, own):
                    ledger.bump("retagged")
            elif roll < 0.30 and held:
                (repo, _), image = rng.choice(held)
                r = http.delete(manifest_url(reg, repo, image.digest))
                assert r.status_code in (202, 404), describe(r)
                for key, m in held:
                    if key[0] == repo and m.digest == image.digest:
                        own.pop(key, None)
                ledger.bump("deleted")
            elif roll < 0.38 and held:
                (repo, tag), _ = rng.choice(held)
                own.pop((repo, tag), None)
                r = http.delete(manifest_url(reg, repo, tag))
                assert r.status_code in (202, 404), describe(r)
                ledger.bump("untagged")
            else:
                image = make_image(layer_blobs=[rng.choice(bases),
                                                Blob(random_bytes(1024), OCI_LAYER_GZIP)])
                tag = rng.choice(tags)
                for _attempt in range(4):  # a refused push uploads what went missing, again
                    _ensure_blobs(reg, repo, image, ledger)
                    if rng.random() < 0.2:
                        time.sleep(rng.random() * 0.2)  # a GC run lands before the manifest
                    if _put(reg, repo, tag, image, ledger, own):
                        mine.append((repo, image))
                        ledger.bump("pushed")
                        break
    except Exception as exc:  # noqa: BLE001 - reported by the test
        ledger.errors.append(f"client {n}: {exc!r}")
    finally:
        with ledger.lock:
            ledger.tags.update(own)


def _collector(gc, stop: threading.Event, ledger: Ledger, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    while not stop.is_set():
        time.sleep(0.2 + rng.random() * 0.8)
        try:
            report = gc()
        except Exception as exc:  # noqa: BLE001
            ledger.errors.append(f"gc: {exc!r}")
            return
        ledger.bump("gc_runs")
        ledger.bump("gc_blobs", report["blobs"])
        ledger.bump("gc_links", report["links"])
        ledger.bump("gc_manifests", report["manifests"])


def _broken(reg, ledger: Ledger) -> list[str]:  # type: ignore[no-untyped-def]
    """Every acknowledged, still-tagged manifest and its blobs, pulled and compared."""
    problems = []
    for (repo, tag), image in sorted(ledger.tags.items()):
        r = http.get(manifest_url(reg, repo, tag), headers={"Accept": ACCEPT_MANIFESTS})
        if r.status_code != 200 or r.content != image.body:
            problems.append(f"{repo}:{tag}: {describe(r)}")
            continue
        for d in [image.json["config"], *image.json["layers"]]:
            b = http.get(blob_url(reg, repo, d["digest"]))
            if b.status_code != 200 or b.content != ledger.blobs[d["digest"]]:
                problems.append(f"{repo}:{tag} blob {d['digest']}: {describe(b)}")
    return problems


# -- backends ----------------------------------------------------------------------------------


def _collector_like_the_cli(data_dir, args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    """The GarbageCollector `moorage gc` builds (through bootstrap), in this process: a run
    costs no interpreter start, so the loop stays tight on a slow machine."""
    from moorage.bootstrap import open_existing
    from moorage.config import Settings

    opts = dict(zip(args[::2], args[1::2], strict=True))
    settings = Settings.from_env(
        env={}, data_dir=data_dir, database_url=opts.get("--database"),
        storage_url=opts.get("--storage"), s3_endpoint=env.get("AWS_ENDPOINT_URL"),
        s3_region=env.get("AWS_REGION"), s3_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        s3_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    return open_existing(settings).collector


@pytest.fixture(scope="module")
def services():  # type: ignore[no-untyped-def]
    from support.backends import services_or_skip

    return services_or_skip()


def _backend(name: str, request) -> tuple[list[str], dict[str, str]]:  # type: ignore[no-untyped-def]
    if name == "sqlite-files":
        return [], {}
    services = request.getfixturevalue("services")
    if name == "pg-s3":
        return services.node_settings()
    from support.backends import migrate

    url = services.pg.create_database()
    migrate(url)
    return ["--database", url], {}


@pytest.mark.parametrize("backend", ["sqlite-files", "pg-files", "pg-s3"])
def test_gc_at_grace_zero_never_breaks_an_acknowledged_image(backend, make_registry, request):
    args, env = _backend(backend, request)
    reg, cli = make_registry(*args, MOORAGE_TAG_RESTORE_WINDOW="0", **env)
    ns = "race" + uuid.uuid4().hex[:8]
    bases = [Blob(random_bytes(4096), OCI_LAYER_GZIP) for _ in range(3)]
    ledger = Ledger()
    stop = threading.Event()

    collector = _collector_like_the_cli(reg.data_dir, args, env)

    def gc() -> dict:
        report = collector.run(grace_period=0, trigger="cli")
        assert not report.errors, report.errors
        return report.to_dict()

    threads = [threading.Thread(target=_client, args=(reg, ns, bases, n, stop, ledger))
               for n in range(CLIENTS)]
    # Two collectors: runs overlap, like a CLI loop beside the server's schedule.
    threads += [threading.Thread(target=_collector, args=(gc, stop, ledger, i))
                for i in range(2)]
    for t in threads:
        t.start()
    # At least SECONDS of racing, and on a loaded machine longer, until enough happened to mean
    # something (at most three times as long).
    started = time.monotonic()
    time.sleep(SECONDS)
    while time.monotonic() - started < 3 * SECONDS and (
            ledger.stats["pushed"] <= 30 or ledger.stats["gc_runs"] < 3):
        time.sleep(1)
    stop.set()
    for t in threads:
        t.join(180)
    assert not ledger.errors, ledger.errors
    stats = ledger.stats
    assert stats["pushed"] > 30 and stats["gc_runs"] >= 3, stats
    assert stats["gc_blobs"] > 0 and stats["gc_links"] > 0 and stats["gc_manifests"] > 0, stats
    problems = _broken(reg, ledger)
    assert not problems, (f"{len(problems)} broken of {len(ledger.tags)} tagged images "
                          f"({stats}):\n" + "\n".join(problems[:20]))
    # One more collection with nothing in flight, by the CLI, keeps every tagged image whole.
    cli.json("gc", "--grace-period", "0", *args)
    assert _broken(reg, ledger) == []
    print(json.dumps({"backend": backend, "tagged": len(ledger.tags), **stats}))

