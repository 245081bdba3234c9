"""Copying what a rule matches between this registry and an upstream: manifests (an index with
its children), their blobs and their referrers.

Pushing: a blob the target has (HEAD) is skipped, one this run already sent to another of the
target's repositories is mounted, the rest goes chunked through an upload session whose URL is
kept in the run, so a retry (after a broken connection or a restart) resumes from the offset
the target acknowledged. Pulling: blobs come with Range-resumed GETs; one this registry holds
in another repository is mounted. Either way a manifest's blobs go several at a time
(`replication_parallel_blobs`), all of a run's transfers under one bandwidth cap (--bandwidth).

Filters: `--artifact-type` keeps tagged manifests and referrers of those types (an image's is
its config media type). `--platform` keeps an index whole when every child is of a chosen
platform; otherwise the index is not copied (its digest names all its children, so a filtered
index would be another manifest): the chosen children are, by digest, or under the tag when
there is exactly one, and the run's notes say so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events.types import Actor
from ..oci.digest import parse_digest
from ..oci.errors import BlobUnknown, ManifestUnknown, NameUnknown
from ..oci.mediatypes import MANIFEST_TYPES
from . import rules
from .bandwidth import TokenBucket

if TYPE_CHECKING:
    from ..bootstrap import Registry
    from ..upstream import UpstreamClient

ACCEPT = sorted(MANIFEST_TYPES)
PAGE = 1000
READ = 1024 * 1024


@dataclass
class Counts:
    """What a run moved (added to the run's row as it goes)."""

    manifests: int = 0
    blobs: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes: int = 0
    deleted: int = 0
    seen: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {"manifests": self.manifests, "blobs": self.blobs, "skipped": self.skipped,
                "mounted": self.mounted, "bytes": self.bytes, "deleted": self.deleted}


def children(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(child manifests, blobs) a manifest refers to (its subject is not among them)."""
    try:
        doc = json.loads(content)
    except ValueError:
        return [], []
    if not isinstance(doc, dict):
        return [], []
    manifests = [d for d in doc.get("manifests") or [] if isinstance(d, dict) and "digest" in d]
    blobs = [d for d in [doc.get("config"), *(doc.get("layers") or []), *(doc.get("blobs") or [])]
             if isinstance(d, dict) and "digest" in d]
    return manifests, blobs


def artifact_type(content: bytes, media_type: str) -> str:
    """A manifest's artifact type: its `artifactType`, else its config's media type, else its
    own media type (an index without one)."""
    try:
        doc = json.loads(content)
    except ValueError:
        return media_type
    if not isinstance(doc, dict):
        return media_type
    config = doc.get("config")
    return str(doc.get("artifactType") or (config.get("mediaType") if isinstance(config, dict)
                                            else None) or media_type)


def platform_of(descriptor: dict[str, Any]) -> str:
    """`os/architecture[/variant]` of an index entry ('' when it names none)."""
    p = descriptor.get("platform")
    if not isinstance(p, dict) or not p.get("os") or not p.get("architecture"):
        return ""
    return "/".join(str(x) for x in (p["os"], p["architecture"], p.get("variant")) if x)


def platform_matches(wanted: str | None, platform: str) -> bool:
    """Whether a platform is among the rule's (`linux/arm64` takes every arm64 variant)."""
    if wanted is None:
        return True
    return bool(platform) and any(platform == w or platform.startswith(w + "/")
                                  for w in rules.patterns(wanted))


async def _all(jobs: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run `jobs` together; once all are over, the first failure is raised as it is (the
    others ran to their end: what they sent is not sent again on the retry)."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class Copier:
    """One run of one rule over an upstream client; `save` records progress in the run."""

    def __init__(self, registry: Registry, client: UpstreamClient, rule: dict[str, Any],
                 run: dict[str, Any], save: Callable[[str, Any], None],
                 parallel: int = 4) -> None:
        self.reg = registry
        self.client = client
        self.rule = rule
        self.run = run
        self.uploads: dict[str, str] = dict(run.get("uploads") or {})
        self.save = save
        self.counts = Counts()
        self.sent_to: dict[str, str] = {}  # blob digest → a target repository that has it
        self.actor = Actor(f"replication:{rule['name']}", "system", None)
        self.slots = asyncio.Semaphore(max(1, parallel))
        self.bucket = TokenBucket(rule["bandwidth"]) if rule.get("bandwidth") else None

    async def _metered(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks` under the run's bandwidth cap, counted."""
        async for chunk in chunks:
            if self.bucket is not None:
                await self.bucket.take(len(chunk))
            self.counts.bytes += len(chunk)
            yield chunk

    def wanted(self, content: bytes, media_type: str) -> bool:
        """Whether a tagged manifest or a referrer passes the rule's --artifact-type."""
        return rules.matches(self.rule.get("artifact_types"), artifact_type(content, media_type))

    def chosen(self, content: bytes) -> list[dict[str, Any]] | None:
        """The children to copy instead of an index --platform does not keep whole (None: copy
        it as it is)."""
        if not self.rule.get("platforms"):
            return None
        manifests, _ = children(content)
        keep = [m for m in manifests if platform_matches(self.rule["platforms"], platform_of(m))]
        return None if len(keep) == len(manifests) else keep

    def note(self, text: str) -> None:
        """Say in the run's record what a filter did."""
        self.save("note", text)

    def _flush(self) -> None:
        self.save("counts", self.counts.as_dict())
        self.counts = Counts(seen=self.counts.seen)

    # -- what a rule covers -------------------------------------------------------------------

    def local_repositories(self) -> list[str]:
        """Our repositories the rule's globs match."""
        found: list[str] = []
        last: str | None = None
        while True:
            with self.reg.database.read() as uow:
                batch = uow.repositories.catalog(last, PAGE)
            found += [r for r in batch if rules.matches(self.rule["repos"], r)]
            if len(batch) < PAGE:
                return found
            last = batch[-1]

    def local_tags(self, repository: str) -> list[str]:
        """The repository's tags the rule's tag globs match."""
        found: list[str] = []
        last: str | None = None
        while True:
            try:
                batch = self.reg.manifests.tags(repository, last, PAGE)
            except NameUnknown:
                return found
            found += [t for t in batch if rules.matches(self.rule["tags"], t)]
            if len(batch) < PAGE:
                return found
            last = batch[-1]

    # -- push to ------------------------------------------------------------------------------

    async def push_all(self) -> None:
        """Every matching tag of every matching repository of ours."""
        for repository in self.local_repositories():
            tags = self.local_tags(repository)
            for tag in tags:
                await self.push_reference(repository, tag)
            if self.rule["delete_mirrors"]:
                await self._delete_there(repository, set(tags))

    async def _delete_there(self, repository: str, kept: set[str]) -> None:
        """Delete the target's matching tags we no longer have (--delete-mirrors)."""
        from ..upstream import UpstreamError

        try:
            there = await self.client.tags(repository)
        except UpstreamError as exc:
            if exc.status == 404:
                return
            raise
        for tag in there:
            if tag not in kept and rules.matches(self.rule["tags"], tag) \
                    and await self.client.delete_manifest(repository, tag):
                self.counts.deleted += 1
        self._flush()

    async def push_reference(self, repository: str, reference: str) -> None:
        """One tag (or digest) of ours, its tree and its referrers, to the same name there."""
        by = parse_digest(reference) if ":" in reference else reference
        row = self.reg.manifests.get(repository, by, True)
        assert row.content is not None
        if not self.wanted(row.content, row.media_type):
            return
        keep = self.chosen(row.content)
        if keep is None:
            await self._push_manifest(repository, row.digest, row.media_type, row.content,
                                      reference)
        else:
            for child in keep:
                got = self.reg.manifests.get(repository, parse_digest(child["digest"]), True)
                assert got.content is not None
                await self._push_manifest(repository, got.digest, got.media_type, got.content,
                                          reference if len(keep) == 1 else got.digest)
            self.note(self._skipped_index(repository, reference, row.digest, keep))
        self._flush()

    def _skipped_index(self, repository: str, reference: str, digest: str,
                       keep: list[dict[str, Any]]) -> str:
        what = ", ".join(platform_of(c) for c in keep) or "none"
        tagged = f"; {reference} names the {what} manifest" if len(keep) == 1 \
            and reference != digest else ""
        return (f"{repository}:{reference}: index {digest} not copied (--platform keeps "
                f"{len(keep)} of its children: {what}){tagged}")

    async def _push_manifest(self, repository: str, digest: str, media_type: str,
                             content: bytes, reference: str) -> None:
        if f"push {repository}@{digest} {reference}" in self.counts.seen:
            return
        self.counts.seen.add(f"push {repository}@{digest} {reference}")
        there = await self.client.head_manifest(repository, digest, ACCEPT)
        if there is None:
            manifests, blobs = children(content)
            for child in manifests:
                row = self.reg.manifests.get(repository, parse_digest(child["digest"]), True)
                assert row.content is not None
                await self._push_manifest(repository, row.digest, row.media_type, row.content,
                                          row.digest)
            await _all(self._push_blob(repository, b["digest"]) for b in blobs)
            await self.client.put_manifest(repository, reference, media_type, content)
            self.counts.manifests += 1
        elif reference != digest:
            await self.client.put_manifest(repository, reference, media_type, content)
        for referrer in self.reg.referrers.list(repository, parse_digest(digest), None, None,
                                                PAGE).descriptors:
            row = self.reg.manifests.get(repository, parse_digest(referrer["digest"]), True)
            assert row.content is not None
            if not self.wanted(row.content, row.media_type):
                continue
            await self._push_manifest(repository, row.digest, row.media_type, row.content,
                                      row.digest)

    async def _push_blob(self, repository: str, digest: str) -> None:
        key = f"{repository}@{digest}"
        if key in self.counts.seen:
            return
        self.counts.seen.add(key)
        async with self.slots:
            await self._send_blob(repository, digest, key)

    async def _send_blob(self, repository: str, digest: str, key: str) -> None:
        if await self.client.head_blob(repository, digest) is not None:
            self.counts.skipped += 1
            return
        lender = self.sent_to.get(digest)
        if lender and await self.client.mount_blob(repository, digest, lender):
            self.counts.mounted += 1
            return
        row = self.reg.blobs.locate(repository, parse_digest(digest))
        store = self.reg.blob_store

        async def read(offset: int) -> AsyncIterator[bytes]:
            chunks = store.open_blob(row.storage_key, offset, row.size - offset)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk

        def source(offset: int) -> AsyncIterator[bytes]:
            return self._metered(read(offset))

        def progress(location: str, offset: int) -> None:
            # kept from offset 0 on: a resume reads `Range: 0-0` as nothing acknowledged
            if self.uploads.get(key) != location:
                self.uploads[key] = location
                self.save("upload", (key, location))

        await self.client.push_blob_from(repository, digest, source, row.size,
                                         self.uploads.get(key), progress)
        if key in self.uploads:
            del self.uploads[key]
            self.save("upload", (key, None))
        self.counts.blobs += 1
        self.sent_to[digest] = repository

    # -- pull from ----------------------------------------------------------------------------

    async def pull_all(self) -> None:
        """Every matching tag of the rule's repositories at the upstream (named literally)."""
        for repository in rules.patterns(self.rule["repos"]):
            tags = [t for t in await self.client.tags(repository)
                    if rules.matches(self.rule["tags"], t)]
            for tag in tags:
                await self.pull_reference(repository, tag)
            if self.rule["delete_mirrors"]:
                for tag in set(self.local_tags(repository)) - set(tags):
                    await self.reg.manifests.delete(repository, tag, self.actor)
                    self.counts.deleted += 1
                self._flush()

    async def pull_reference(self, repository: str, reference: str) -> None:
        """One tag (or digest) of the upstream, its tree and its referrers, stored here."""
        got = await self.client.get_manifest(repository, reference, ACCEPT)
        if not self.wanted(got.content, got.media_type):
            return
        keep = self.chosen(got.content)
        if keep is None:
            await self._pull_manifest(repository, got.digest, got.media_type, got.content,
                                      reference)
        else:
            for child in keep:
                one = await self.client.get_manifest(repository, child["digest"], ACCEPT)
                await self._pull_manifest(repository, one.digest, one.media_type, one.content,
                                          reference if len(keep) == 1 else one.digest)
            self.note(self._skipped_index(repository, reference, got.digest, keep))
        self._flush()

    async def _pull_manifest(self, repository: str, digest: str, media_type: str,
                             content: bytes, reference: str) -> None:
        if f"pull {repository}@{digest} {reference}" in self.counts.seen:
            return
        self.counts.seen.add(f"pull {repository}@{digest} {reference}")
        try:
            self.reg.manifests.get(repository, parse_digest(digest), False)
            stored = True
        except (ManifestUnknown, NameUnknown):
            stored = False
        if not stored:
            manifests, blobs = children(content)
            for child in manifests:
                got = await self.client.get_manifest(repository, child["digest"], ACCEPT)
                await self._pull_manifest(repository, got.digest, got.media_type, got.content,
                                          got.digest)
            await _all(self._pull_blob(repository, b["digest"], b.get("size")) for b in blobs)
            by = reference if reference != digest else parse_digest(digest)
            await self.reg.manifests.push(repository, by, content, media_type, [], self.actor)
            self.counts.manifests += 1
        elif reference != digest:
            await self.reg.manifests.push(repository, reference, content, media_type, [],
                                          self.actor)
        for referrer in await self.client.referrers(repository, digest):
            got = await self.client.get_manifest(repository, referrer["digest"], ACCEPT)
            if not self.wanted(got.content, got.media_type):
                continue
            await self._pull_manifest(repository, got.digest, got.media_type, got.content,
                                      got.digest)

    async def _pull_blob(self, repository: str, digest: str, size: Any) -> None:
        if f"pull {repository}@{digest}" in self.counts.seen:
            return
        self.counts.seen.add(f"pull {repository}@{digest}")
        async with self.slots:
            await self._fetch_blob(repository, digest, size)

    async def _fetch_blob(self, repository: str, digest: str, size: Any) -> None:
        parsed = parse_digest(digest)
        try:
            self.reg.blobs.locate(repository, parsed)
            self.counts.skipped += 1
            return
        except BlobUnknown:
            pass
        if self.reg.blobs.holders(parsed) and await self.reg.blobs.mount(
                repository, parsed, None, self.actor):
            self.counts.mounted += 1
            return

        await self.reg.uploads.push_whole(repository, parsed,
                                          self._metered(self.client.get_blob(repository, digest)),
                                          size if isinstance(size, int) else None, self.actor)
        self.counts.blobs += 1
