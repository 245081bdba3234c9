"""The one composition root: Settings → engine, stores, services.

The server (`web/app.py`, `server.py`), every CLI command and the tests get what they use from a
`Registry` built here; nothing else constructs an engine, a store or a service. Services are
built on first use, so a CLI command pays only for what it touches.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .config import Settings

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import Engine

    from .auth.admin import AdminService
    from .auth.authorizer import Authorizer
    from .auth.oidc import OidcService
    from .auth.service import AuthService
    from .auth.sso import SsoService
    from .auth.tokens import TokenAuthority
    from .cache.proxy import Front, PullThrough
    from .cache.service import CacheService
    from .chunks.service import ChunkService
    from .events.audit import AuditLog
    from .events.dispatcher import Consumer, Dispatcher
    from .events.outbox import Outbox
    from .events.processors import PostPushProcessor
    from .gc.collector import GarbageCollector
    from .gc.service import GcService
    from .insights.service import InsightsService
    from .jobs.queue import JobQueue
    from .jobs.runner import JobRunner
    from .metadata.uow import Database
    from .metrics.exposition import Exposition
    from .models.service import ModelService
    from .operations.check import IntegrityCheck
    from .operations.rotation import SecretsRotation
    from .policy.admission import AdmissionChain, PullRequest
    from .policy.pull import PullPolicyCheck
    from .policy.quota import UploadQuota
    from .registry.blobs import BlobService
    from .registry.browse import BrowseService
    from .registry.catalog import CatalogService
    from .registry.deletion import DeletionService
    from .registry.manifests import ManifestService
    from .registry.policies import PolicyService
    from .registry.pull_policies import PullPolicyService
    from .registry.pulls import PullRecorder
    from .registry.rate_limiter import RateLimiter
    from .registry.rate_limits import RateLimitService
    from .registry.referrers import ReferrerService
    from .registry.retention import RetentionService
    from .registry.uploads import UploadService
    from .registry.upstreams import UpstreamService
    from .registry.webhooks import WebhookService
    from .replication.service import ReplicationService
    from .scan.osv_oci import OsvArtifacts
    from .scan.reports import ScanReports
    from .scan.service import SbomService
    from .scan.vulndb import VulnDatabase
    from .signing.trust import TrustService
    from .signing.verify import SignatureService, Verifier
    from .storage.base import BlobStore
    from .ui.sessions import SessionCodec

TOKEN_KEY_SECRET = "token-signing-key"


class NoRegistry(Exception):
    """The options point at no registry (or at one this version cannot use as it is)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class Registry:
    """Everything one process of Moorage works with, wired from one Settings."""

    settings: Settings
    engine: Engine = field(repr=False)

    # -- stores -----------------------------------------------------------------------------

    @cached_property
    def blob_store(self) -> BlobStore:
        from .chunks.reader import ChunkedBlobStore
        from .storage.factory import make_blob_store

        # Chunk-aware: every reader of blob bytes serves chunked blobs unchanged.
        return ChunkedBlobStore(make_blob_store(self.settings), self.database)

    @cached_property
    def chunks(self) -> ChunkService:
        """Chunk-level dedup: the chunking job, dedup stats, the delta push/pull internals."""
        from .chunks.service import ChunkService

        s = self.settings
        return ChunkService(self.database, self.blob_store, avg_size=s.chunk_avg_size,
                            min_saving=s.chunk_min_saving,
                            authorizer=self.authorizer if s.auth else None,
                            quota=self.upload_quota)

    @cached_property
    def database(self) -> Database:
        """Units of work on the registry's database (`database.write()` / `read()`)."""
        from .metadata.uow import Database

        return Database(self.engine)

    # -- access -----------------------------------------------------------------------------

    @cached_property
    def audit(self) -> AuditLog:
        from .events.audit import AuditLog

        return AuditLog(self.database)

    @property
    def outbox(self) -> Outbox:
        return self.audit.outbox

    @cached_property
    def auth(self) -> AuthService:
        from .auth.sealing import sealer_for
        from .auth.service import AuthService
        from .auth.throttle import LoginThrottle

        return AuthService(self.database,
                           LoginThrottle(address_limit=self.settings.login_address_limit,
                                         alert_address_failures=self.settings.alert_login_failures),
                           oidc=lambda: self.oidc, sealer=lambda: sealer_for(self.settings))

    @cached_property
    def oidc(self) -> OidcService:
        """Trusted OIDC issuers and rules, and the exchange of ID tokens (`moorage oidc`)."""
        from .auth.jwks import JwksCache
        from .auth.oidc import OidcService

        s = self.settings
        return OidcService(self.database, self.authorizer,
                           JwksCache(timeout=s.oidc_jwks_timeout, ttl=s.oidc_jwks_cache_seconds,
                                     refresh_interval=s.oidc_jwks_refresh_interval),
                           leeway=s.oidc_leeway, max_token_age=s.oidc_max_token_age)

    @cached_property
    def sso(self) -> SsoService:
        """Single sign-on to the web UI with the configured OIDC provider (`ui_oidc_*`)."""
        from .auth.sso import SsoService

        return SsoService(self.settings, self.auth, self.admin)

    @cached_property
    def authorizer(self) -> Authorizer:
        from .auth.authorizer import Authorizer

        return Authorizer(self.database)

    @cached_property
    def authority(self) -> TokenAuthority:
        from .auth.tokens import TokenAuthority, generate_signing_key

        return TokenAuthority(
            self.auth.shared_secret(TOKEN_KEY_SECRET, generate_signing_key),
            service=self.settings.token_service,
            ttl=self.settings.token_ttl,
        )

    @cached_property
    def admin(self) -> AdminService:
        from .auth.admin import AdminService

        return AdminService(self.database, self.auth, self.audit, self.authorizer)

    # -- registry services ------------------------------------------------------------------

    @cached_property
    def policies(self) -> PolicyService:
        from .registry.policies import PolicyService

        return PolicyService(self.database, self.upload_quota, self.authorizer)

    @cached_property
    def deletion(self) -> DeletionService:
        from .registry.deletion import DeletionService

        return DeletionService(self.database, self.settings.tag_restore_window, self.authorizer)

    @cached_property
    def retention(self) -> RetentionService:
        from .registry.retention import RetentionService

        return RetentionService(self.database, self.authorizer)

    @cached_property
    def pulls(self) -> PullRecorder:
        from .registry.pulls import PullRecorder

        return PullRecorder(self.database, self.settings.pull_flush_interval)

    @cached_property
    def collector(self) -> GarbageCollector:
        from .gc.collector import GarbageCollector

        s = self.settings
        return GarbageCollector(self.database, self.blob_store, grace_period=s.gc_grace_period,
                                upload_ttl=s.upload_ttl, restore_window=s.tag_restore_window,
                                collect_untagged=s.gc_untagged)

    @cached_property
    def gc(self) -> GcService:
        from .gc.service import GcService

        return GcService(self.collector, self.authorizer)

    @cached_property
    def integrity(self) -> IntegrityCheck:
        from .operations.check import IntegrityCheck

        return IntegrityCheck(self.database, self.blob_store, self.authorizer)

    @cached_property
    def secrets_rotation(self) -> SecretsRotation:
        from .operations.rotation import SecretsRotation

        return SecretsRotation(self.database, self.settings, self.authorizer)

    @cached_property
    def admission(self) -> AdmissionChain:
        """The push and pull checks (signature and vulnerability policies plug in here)."""
        from .policy.admission import default_chain

        chain = default_chain(allow_sparse=self.settings.allow_sparse)
        chain.pull += (self.pull_policy_check,)
        return chain

    @cached_property
    def pull_policy_check(self) -> PullPolicyCheck:
        """Namespace pull policies as one pull check (policies and decisions cached briefly)."""
        from .policy.pull import PullPolicyCheck

        return PullPolicyCheck(lambda repo, digest: self.verifier.verify(repo, digest),
                               self._audit_pull_denial,
                               policy_seconds=self.settings.pull_policy_cache_seconds)

    @cached_property
    def _audit_pool(self) -> ThreadPoolExecutor:
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-audit")

    def _audit_pull_denial(self, pull: PullRequest, rule: str, message: str,
                           dry_run: bool) -> None:
        # A pull check runs inside a read, on the event loop for SQLite: write the event later,
        # in a thread of its own.
        self._audit_pool.submit(self._write_pull_denial, pull, rule, message, dry_run)

    def _write_pull_denial(self, pull: PullRequest, rule: str, message: str,
                           dry_run: bool) -> None:
        from .events.types import Actor, PullDenied, records

        with self.database.write() as uow:
            uow.emit(records(PullDenied(
                actor=Actor.of(pull.actor) if pull.actor is not None else Actor(),
                repository=pull.repository, digest=pull.digest, reference=pull.reference,
                rule=rule, message=message, dry_run=dry_run)))

    @cached_property
    def pull_policies(self) -> PullPolicyService:
        """`moorage policy set|show`: namespace pull policies."""
        from .registry.pull_policies import PullPolicyService

        return PullPolicyService(self.database, self.authorizer, self.pull_policy_check.forget)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """The request side of rate limits (limits cached briefly, buckets in the database)."""
        from .registry.rate_limiter import RateLimiter

        return RateLimiter(self.database, self.settings.ratelimit_cache_seconds)

    @cached_property
    def rate_limits(self) -> RateLimitService:
        """`moorage ratelimit set|list|remove`: rate limits per user, robot, namespace."""
        from .registry.rate_limits import RateLimitService

        return RateLimitService(self.database, self.authorizer, self.rate_limiter.forget)

    @cached_property
    def upload_quota(self) -> UploadQuota:
        """The upload-time quota check, its figures cached briefly (shared with the policy service)."""
        from .policy.quota import UploadQuota

        return UploadQuota()

    @cached_property
    def uploads(self) -> UploadService:
        from .registry.uploads import UploadService

        return UploadService(self.database, self.blob_store, self.settings.upload_lease_seconds,
                             self.upload_quota, self.blobs,
                             checkpoint_bytes=self.settings.upload_checkpoint_bytes)

    @cached_property
    def blobs(self) -> BlobService:
        from .registry.blobs import BlobService

        return BlobService(self.database, self.blob_store,
                           redirect_min_bytes=self.settings.redirect_min_bytes,
                           redirect_expires=self.settings.presign_expires)

    @cached_property
    def manifests(self) -> ManifestService:
        from .registry.manifests import ManifestService

        return ManifestService(self.database, self.settings.max_manifest_bytes, self.deletion,
                               self.pulls, self.admission)

    @cached_property
    def catalog(self) -> CatalogService:
        from .auth.authorizer import OpenAuthorizer
        from .registry.catalog import CatalogService

        # With access control off (`--no-auth`) /v2/ is open: every repository is listed.
        return CatalogService(self.database,
                              self.authorizer if self.settings.auth else OpenAuthorizer())

    @cached_property
    def ui_sessions(self) -> SessionCodec:
        """Signs and checks the web UI's session cookies (one key for every worker and node)."""
        from .ui.sessions import SessionCodec

        key = self.auth.shared_secret("ui-session-key", lambda: os.urandom(32))
        return SessionCodec(key, self.settings.ui_session_seconds)

    @cached_property
    def browse(self) -> BrowseService:
        """The web UI's read-only views, filtered by what the caller may pull."""
        from .auth.authorizer import OpenAuthorizer
        from .registry.browse import BrowseService

        return BrowseService(self.database,
                             self.authorizer if self.settings.auth else OpenAuthorizer(),
                             self.blobs, self.blob_store, self.referrers)

    @cached_property
    def referrers(self) -> ReferrerService:
        from .registry.referrers import ReferrerService

        return ReferrerService(self.database)

    @cached_property
    def webhooks(self) -> WebhookService:
        from .auth.sealing import sealer_for
        from .registry.webhooks import WebhookService

        s = self.settings
        return WebhookService(self.database, self.authorizer, lambda: sealer_for(s),
                              timeout=s.webhook_timeout, backoff_max=s.webhook_backoff_max,
                              max_age=s.webhook_max_age, job_attempts=s.job_max_attempts)

    # -- upstreams and the pull-through cache --------------------------------------------------

    @cached_property
    def upstreams(self) -> UpstreamService:
        """Upstream registries (credentials sealed), for the cache and replication."""
        from .auth.sealing import sealer_for
        from .registry.upstreams import UpstreamService

        s = self.settings
        return UpstreamService(self.database, self.authorizer, lambda: sealer_for(s),
                               connect_timeout=s.cache_upstream_timeout)

    @cached_property
    def caches(self) -> CacheService:
        """Cache namespaces and the lookup of the one a repository is in."""
        from .cache.service import CacheService

        return CacheService(self.database, self.authorizer)

    @cached_property
    def replication(self) -> ReplicationService:
        """Replication rules, their runs and the `replication.run` job."""
        from .replication.service import ReplicationService

        return ReplicationService(self)

    @cached_property
    def pull_through(self) -> PullThrough:
        from .cache.proxy import PullThrough
        from .policy.admission import default_chain
        from .registry.manifests import ManifestService

        s = self.settings
        # Cached content is sparse: an index without its children, an image without its layers.
        store = ManifestService(self.database, s.max_manifest_bytes, self.deletion, self.pulls,
                                default_chain(allow_sparse=True))
        return PullThrough(self.caches, self.upstreams, self.database, store, self.uploads,
                           s.data_dir / "cache-spool", upstream_timeout=s.cache_upstream_timeout,
                           referrers_ttl=s.cache_referrers_ttl,
                           lease_seconds=s.cache_fetch_lease_seconds)

    @cached_property
    def front(self) -> Front:
        """The services /v2/ serves: the registry's own, decorated by the pull-through cache."""
        from .cache.proxy import decorate

        return decorate(self.pull_through, self.manifests, self.blobs, self.uploads,
                        self.referrers)

    # -- supply chain -------------------------------------------------------------------------

    @cached_property
    def vulndb(self) -> VulnDatabase:
        """The offline vulnerability database (OSV data imported with `moorage vulndb`)."""
        from .scan.vulndb import VulnDatabase

        return VulnDatabase(self.database, on_imported=self.queue_rematch)

    @cached_property
    def osv_artifacts(self) -> OsvArtifacts:
        """OSV data as an OCI artifact of this registry (`vulndb import oci://`, `publish`)."""
        from .scan.osv_oci import OsvArtifacts

        return OsvArtifacts(self.database, self.manifests, self.blobs, self.blob_store, self.uploads,
                            self.vulndb, self.settings.spool_dir)

    def queue_rematch(self) -> None:
        """Queue the re-match of every done scan report (new vulnerability data came in)."""
        from .jobs.tasks.scans import REMATCH_KIND

        self.jobs.enqueue(REMATCH_KIND, {}, unique_key=REMATCH_KIND)

    @cached_property
    def scans(self) -> ScanReports:
        """Scan reports of manifests (`moorage scan show`, the scan API, the scan job)."""
        from .scan.reports import ScanReports

        return ScanReports(self.database, self.vulndb, self.settings.sbom_on_push,
                           self._queue_scan if self.settings.sbom_on_push else None)

    def _queue_scan(self, repository: str, digest: str, media_type: str) -> None:
        from .events.processors import job_kind

        for processor in self.processors:
            if processor.name == "sbom":
                self.jobs.enqueue(job_kind(processor), {
                    "repository": repository, "digest": digest, "media_type": media_type,
                    "reference": None, "size": None, "event_id": None, "actor": None},
                    unique_key=f"sbom:{repository}@{digest}")

    @cached_property
    def insights(self) -> InsightsService:
        """Image size insights: the `insights` job and the stored reports."""
        from .insights.service import InsightsService

        return InsightsService(self)

    @cached_property
    def sboms(self) -> SbomService:
        """Stored SBOM referrers, read back (`moorage sbom show`)."""
        from .scan.service import SbomService

        return SbomService(self.database, self.referrers, self.blobs, self.blob_store)

    @cached_property
    def models(self) -> ModelService:
        """The model index read back (search, cards, files, tensors, diff)."""
        from .auth.authorizer import OpenAuthorizer
        from .models.service import ModelService

        # As the catalog: with access control off every repository is visible.
        return ModelService(self.database,
                            self.authorizer if self.settings.auth else OpenAuthorizer())

    @cached_property
    def trust(self) -> TrustService:
        """The keys and roots each namespace trusts for signatures (`moorage trust`)."""
        from .signing.trust import TrustService

        return TrustService(self.database, self.authorizer, self.verifier.forget)

    @cached_property
    def verifier(self) -> Verifier:
        """Verifies a manifest's signatures against its namespace's trust (cached briefly): the
        service API a pull check calls."""
        from .signing.discovery import SignatureFinder
        from .signing.verify import Verifier

        return Verifier(self.database, SignatureFinder(self.database, self.blobs,
                                                       self.blob_store))

    @cached_property
    def signatures(self) -> SignatureService:
        """`moorage verify` and `moorage provenance`: verification by reference, pull rights."""
        from .signing.verify import SignatureService

        return SignatureService(self.database, self.verifier, self.authorizer)

    # -- background work ----------------------------------------------------------------------

    @cached_property
    def processors(self) -> list[PostPushProcessor]:
        """The post-push processors of this deployment (the SBOM generator by default)."""
        from .events.processors import configured

        return configured(registry=self)

    @cached_property
    def jobs(self) -> JobQueue:
        from .events.processors import handlers
        from .jobs.setup import make_queue

        return make_queue(self.settings, self.database, handlers(self.processors))

    def job_runner(self, concurrency: int | None = None) -> JobRunner:
        """A runner of every job kind over this registry's services (and its processors)."""
        from .events.processors import handlers
        from .jobs.setup import make_runner

        return make_runner(self.settings, self.jobs, self, concurrency,
                           handlers(self.processors))

    def exposition(self) -> Exposition:
        """What /metrics answers: this process's instruments (every worker's in multiprocess
        mode) and the registry gauges."""
        from .metrics.exposition import Exposition
        from .metrics.gauges import RegistryGauges

        gauges = RegistryGauges(self.database, self.check_database, self.blob_store.check,
                                self.gc.metrics, [c.name for c in self.dispatcher.consumers],
                                self.settings.metrics_cache_seconds)
        return Exposition([gauges], self.settings.metrics_top_repositories)

    async def serve_metrics(self, host: str, port: int) -> Any:
        """A bare /metrics endpoint on HOST:PORT for a process that serves nothing else
        (`moorage worker`); returns the aiohttp runner (clean it up to stop)."""
        from .web.metrics import serve_metrics

        return await serve_metrics(self.exposition(), host, port)

    def ensure_schedules(self) -> None:
        """Queue the recurring jobs the settings ask for (GC + retention, upload expiry)."""
        from .jobs.setup import ensure_schedules

        ensure_schedules(self.jobs, self.settings)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from .events.activity import ActivityRules, ActivityWatcher
        from .events.dispatcher import Dispatcher
        from .events.webhooks import WebhookConsumer

        consumers: list[Consumer] = [self.audit.consumer, WebhookConsumer(
            f"/moorage/{self.settings.token_service or self.settings.host}",
            self.settings.job_max_attempts)]
        s = self.settings
        if s.alert_mass_deletes or s.alert_robot_new_address or s.alert_pull_spike:
            consumers.append(ActivityWatcher(self.database, ActivityRules(
                s.alert_mass_deletes, s.alert_window, s.alert_robot_new_address,
                s.alert_pull_spike)))
        if self.processors:  # no processors: no post-push consumer, no cursor
            from .events.processors import PostPushConsumer

            consumers.append(PostPushConsumer(self.processors, self.jobs))
        return Dispatcher(self.outbox, consumers,
                          poll_interval=self.settings.events_poll_interval,
                          start_delay=self.settings.events_dispatch_delay,
                          max_attempts=self.settings.events_max_attempts,
                          lease_seconds=self.settings.events_lease_seconds)

    # -- health and shutdown -------------------------------------------------------------------

    def check_database(self) -> None:
        """Raise unless the database answers a query."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Release the database connections (after any pull denial still being audited)."""
        if "_audit_pool" in self.__dict__:
            self._audit_pool.shutdown(wait=True)
        self.engine.dispose()


def database_url(settings: Settings) -> str:
    """The URL of the registry's database (the embedded SQLite file unless one is given)."""
    from .metadata.engine import sqlite_url

    return settings.database_url or sqlite_url(settings.data_dir.resolve())


# What a serving process imports on first use (services are built lazily): importing it before
# the workers fork lets them share those pages instead of each loading its own copy.
_SERVING_MODULES = (
    "moorage.web.app",
    "moorage.metrics.gauges",
    "moorage.metadata.engine",
    "moorage.jobs.runner",
    "moorage.jobs.setup",
    "moorage.jobs.tasks.gc",
    "moorage.jobs.tasks.outbox",
    "moorage.jobs.tasks.quota",
    "moorage.jobs.tasks.retention",
    "moorage.jobs.tasks.uploads",
    "moorage.jobs.tasks.webhooks",
    "moorage.events.webhooks",
    "moorage.events.processors",
    "moorage.registry.pulls",
    "moorage.storage.factory",
    "moorage.chunks.reader",
    "cryptography.hazmat.backends.openssl.backend",
)


def preload(settings: Settings) -> None:
    """Import what this configuration's serving processes use (and only that: no database
    driver or storage driver it does not name)."""
    import importlib

    from .storage.factory import scheme_of

    embedded = database_url(settings).startswith("sqlite")
    s3 = bool(settings.storage_url) and scheme_of(settings.storage_url or "") == "s3"
    driver = ("sqlite3", "sqlalchemy.dialects.sqlite.pysqlite") if embedded else (
        "psycopg", "sqlalchemy.dialects.postgresql.psycopg")
    for name in (*_SERVING_MODULES, *driver,
                 "moorage.storage.s3" if s3 else "moorage.storage.filesystem"):
        importlib.import_module(name)
    if settings.auth:
        from .auth.tokens import warm_up

        warm_up()
    # The post-push jobs run in the serving workers: their code is shared too when it is on.
    if settings.sbom_on_push:
        _import_package("moorage.scan")
    if settings.models_on_push:
        _import_package("moorage.models")
    if settings.insights_on_push:
        _import_package("moorage.insights")


def _import_package(name: str) -> None:
    import importlib
    import pkgutil

    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
        importlib.import_module(module.name)


def open_registry(settings: Settings) -> Registry:
    """The registry of a server process (its database was prepared by `prepare`)."""
    from .metadata.engine import make_engine

    return Registry(settings, make_engine(database_url(settings), settings.db_pool_size,
                                           durable=settings.fsync))


def prepare(settings: Settings) -> None:
    """Create the data dir; migrate the embedded SQLite database, or check that a shared one is
    migrated (SchemaNotCurrent otherwise); create the first admin; free the upload leases a
    crashed run of the embedded database left."""
    from .metadata.engine import make_engine
    from .metadata.migrate import check_current, upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url(settings)
    engine = make_engine(url)
    try:
        if url.startswith("sqlite"):
            # The embedded database belongs to this server: migrating it needs no flag.
            upgrade(engine)
        else:
            # A shared database is migrated once, on purpose (`moorage db upgrade`), never by
            # whichever node happens to start first.
            check_current(engine)
        registry = Registry(settings, engine)
        if settings.auth:
            generated = registry.auth.bootstrap_admin(settings.admin_password)
            if generated:
                print(
                    f"created the first admin account: user 'admin', password '{generated}'"
                    " (shown once; change it with `moorage user passwd admin`)",
                    file=sys.stderr,
                    flush=True,
                )
        if url.startswith("sqlite"):
            # The embedded database belongs to this one server: no other writer can be alive.
            with registry.database.write() as uow:
                uow.uploads.release_all()
    finally:
        engine.dispose()


def open_existing(settings: Settings) -> Registry:
    """The registry the options point at; NoRegistry when there is none (nothing is created).

    An embedded database that is merely behind is migrated, as `moorage serve` would; a shared
    one must be current (NoRegistry with exit code 3 and the command to run).
    """
    from sqlalchemy import inspect

    from .metadata.engine import make_engine
    from .metadata.migrate import SchemaNotCurrent, check_current, upgrade

    if not settings.database_url and not (settings.data_dir / "moorage.db").is_file():
        raise NoRegistry(no_registry_message(settings, "no moorage.db"))
    url = database_url(settings)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:  # noqa: BLE001 - an unreachable database is reported, not traced
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise NoRegistry(f"cannot open the database {safe_url(url)}: {reason}") from None
    if "alembic_version" not in tables and "repositories" not in tables:
        engine.dispose()
        raise NoRegistry(no_registry_message(settings, "no Moorage schema in its database"))
    try:
        upgrade(engine) if url.startswith("sqlite") else check_current(engine)
    except SchemaNotCurrent as exc:
        engine.dispose()
        raise NoRegistry(str(exc), 3) from None
    return Registry(settings, engine)


def upgrade_database(settings: Settings, revision: str = "head") -> tuple[str, str | None, str]:
    """Migrate the registry's database (creating the embedded one's data dir): (url shown to
    users, revision before, revision after)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import upgrade

    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(settings))
    try:
        before, after = upgrade(engine, revision)
    finally:
        engine.dispose()
    return engine.url.render_as_string(hide_password=True), before, after


def database_revisions(settings: Settings) -> tuple[str | None, str]:
    """(the revision the registry's database is at, the one this version needs)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import current_revision, head_revision

    if not settings.database_url and not (settings.data_dir / "moorage.db").is_file():
        raise NoRegistry(no_registry_message(settings, "no moorage.db"))
    engine = make_engine(database_url(settings))
    try:
        return current_revision(engine), head_revision()
    finally:
        engine.dispose()


def no_registry_message(settings: Settings, why: str) -> str:
    """The sentence a user sees when the options point at no registry."""
    where = (safe_url(settings.database_url) if settings.database_url
             else str(settings.data_dir.resolve()))
    return (f"no Moorage registry in {where} ({why}): pass --data-dir DIR or --database URL "
            "(or set MOORAGE_DATA_DIR / MOORAGE_DATABASE_URL), "
            "or run 'moorage serve' once to create one")


def safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, minus nothing secret
        return url.split("@")[-1]
