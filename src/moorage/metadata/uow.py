"""The unit of work: one transaction, the query modules bound to it, its events appended last.

Services open one with `Database.write()` (or `read()`) and call `uow.<aggregate>.<query>()`;
they never see a connection, a table or SQLAlchemy. Everything a state change writes, its checks
included, happens on that one transaction; the domain events it `emit`s are appended to the
outbox as the transaction's last statement, so the change and its events commit together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError

from ..oci.errors import RegistryError
from .base import StoreBase
from .queries import outbox
from .queries.access import AccessQueries
from .queries.activity import ActivityQueries
from .queries.blobs import BlobQueries
from .queries.browse import BrowseQueries
from .queries.cache import CacheQueries
from .queries.chunks import ChunkQueries
from .queries.deletion import DeletionQueries
from .queries.gc import GcQueries
from .queries.graph import GraphQueries
from .queries.insights import InsightsQueries
from .queries.integrity import IntegrityQueries
from .queries.jobs import JobQueries
from .queries.manifests import ManifestQueries
from .queries.models import ModelQueries
from .queries.oidc import OidcQueries
from .queries.outbox import OutboxQueries
from .queries.policies import PolicyQueries
from .queries.pull_policies import PullPolicyQueries
from .queries.pulls import PullQueries
from .queries.rate_limits import RateLimitQueries
from .queries.referrers import ReferrerQueries
from .queries.replication import ReplicationQueries
from .queries.repositories import RepositoryQueries
from .queries.scans import ScanQueries
from .queries.sealed import SealedQueries
from .queries.stats import StatsQueries
from .queries.tags import TagQueries
from .queries.trust import TrustQueries
from .queries.uploads import UploadQueries
from .queries.usage import UsageQueries
from .queries.vulns import VulnQueries
from .queries.webhooks import WebhookQueries


class UnitOfWork:
    """One open transaction (or, from `read()`, one plain connection) and its query modules."""

    def __init__(self, conn: Connection, store: StoreBase, writable: bool) -> None:
        self.conn = conn  # for query modules only: services never touch it
        self.store = store
        self.writable = writable
        self.events: list[Mapping[str, Any]] = []

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.conn.dialect.name

    def emit(self, records: Any) -> None:
        """Queue event records (from `events.types.records`) to commit with this transaction."""
        if not self.writable:
            raise RuntimeError("events are emitted only inside a write")
        self.events.extend(records)

    # -- query modules, one per aggregate ----------------------------------------------------

    @cached_property
    def repositories(self) -> RepositoryQueries:
        return RepositoryQueries(self)

    @cached_property
    def blobs(self) -> BlobQueries:
        return BlobQueries(self)

    @cached_property
    def chunks(self) -> ChunkQueries:
        return ChunkQueries(self)

    @cached_property
    def uploads(self) -> UploadQueries:
        return UploadQueries(self)

    @cached_property
    def manifests(self) -> ManifestQueries:
        return ManifestQueries(self)

    @cached_property
    def tags(self) -> TagQueries:
        return TagQueries(self)

    @cached_property
    def referrers(self) -> ReferrerQueries:
        return ReferrerQueries(self)

    @cached_property
    def policies(self) -> PolicyQueries:
        return PolicyQueries(self)

    @cached_property
    def usage(self) -> UsageQueries:
        return UsageQueries(self)

    # -- lifecycle aggregates ----------------------------------------------------------------

    @cached_property
    def deletion(self) -> DeletionQueries:
        return DeletionQueries(self)

    @cached_property
    def pulls(self) -> PullQueries:
        return PullQueries(self)

    @cached_property
    def graph(self) -> GraphQueries:
        return GraphQueries(self)

    @cached_property
    def gc(self) -> GcQueries:
        return GcQueries(self)

    # -- access, events, jobs ----------------------------------------------------------------

    @cached_property
    def access(self) -> AccessQueries:
        return AccessQueries(self)

    @cached_property
    def oidc(self) -> OidcQueries:
        return OidcQueries(self)

    @cached_property
    def outbox(self) -> OutboxQueries:
        return OutboxQueries(self)

    @cached_property
    def jobs(self) -> JobQueries:
        return JobQueries(self)

    @cached_property
    def webhooks(self) -> WebhookQueries:
        return WebhookQueries(self)

    @cached_property
    def stats(self) -> StatsQueries:
        return StatsQueries(self)

    @cached_property
    def activity(self) -> ActivityQueries:
        return ActivityQueries(self)

    @cached_property
    def cache(self) -> CacheQueries:
        return CacheQueries(self)

    @cached_property
    def replication(self) -> ReplicationQueries:
        return ReplicationQueries(self)

    # -- vulnerability data -------------------------------------------------------------------

    @cached_property
    def vulns(self) -> VulnQueries:
        return VulnQueries(self)

    # -- ML models ------------------------------------------------------------------------------

    @cached_property
    def models(self) -> ModelQueries:
        return ModelQueries(self)

    @cached_property
    def scans(self) -> ScanQueries:
        return ScanQueries(self)

    @cached_property
    def insights(self) -> InsightsQueries:
        return InsightsQueries(self)

    # -- signatures ---------------------------------------------------------------------------

    @cached_property
    def trust(self) -> TrustQueries:
        return TrustQueries(self)

    @cached_property
    def pull_policies(self) -> PullPolicyQueries:
        return PullPolicyQueries(self)

    # -- the web UI's read-only views ---------------------------------------------------------

    @cached_property
    def browse(self) -> BrowseQueries:
        return BrowseQueries(self)

    # -- operations ---------------------------------------------------------------------------

    @cached_property
    def integrity(self) -> IntegrityQueries:
        return IntegrityQueries(self)

    @cached_property
    def sealed(self) -> SealedQueries:
        return SealedQueries(self)

    @cached_property
    def rate_limits(self) -> RateLimitQueries:
        return RateLimitQueries(self)


class Database(StoreBase):
    """Opens units of work on the registry's engine."""

    @property
    def reads_inline(self) -> bool:
        """True when a one-row read is cheaper than a hop to a worker thread: an indexed SQLite
        read takes ~0.1 ms from the page cache, and a thread hop under the GIL costs more (it
        halved manifest GETs on 2 cores). A PostgreSQL read is a network round trip: a thread."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """One write transaction: commits (with its events) when the block ends, rolls back on
        an exception."""
        with _text_refused(), self._write() as conn:
            uow = UnitOfWork(conn, self, writable=True)
            yield uow
            if uow.events:
                outbox.append(conn, uow.events)

    @contextmanager
    def read(self) -> Iterator[UnitOfWork]:
        """A connection for reads (single statements, no transaction on PostgreSQL)."""
        with _text_refused(), self._read() as conn:
            yield UnitOfWork(conn, self, writable=False)

    @contextmanager
    def snapshot(self) -> Iterator[UnitOfWork]:
        """Several reads that see one consistent state (a read-only transaction)."""
        with _text_refused(), self.engine.connect() as conn, conn.begin():
            yield UnitOfWork(conn, self, writable=False)


class TextRefused(RegistryError):
    """Input the database cannot hold (PostgreSQL text has no NUL byte): a 400, never a 500."""

    default_message = "a name, reference or value contains a NUL byte"


@contextmanager
def _text_refused() -> Iterator[None]:
    """Turn PostgreSQL's refusal of a NUL byte in any text parameter (a hostile name, tag,
    upload id, scope or account name; SQLite stores it and simply finds nothing) into the
    client's error. The edges validate what they know; this covers every lookup at once."""
    try:
        yield
    except DataError as exc:
        if "NUL" not in str(exc.orig):
            raise
        raise TextRefused() from None
