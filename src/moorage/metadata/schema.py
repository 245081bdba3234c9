"""Tables of the metadata database (SQLAlchemy Core; same schema on SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

# Content addressing: digest -> opaque storage key. Shared by every repository.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("storage_key", String(300), nullable=False),
    Column("created_at", Float, nullable=False),
    # "whole": the bytes are the object at storage_key; "chunked": its recipe (blob_chunks).
    Column("layout", String(16), nullable=False, server_default="whole"),
)

# Content-defined chunks (BLAKE3 ids) and where their bytes live: a range of a pack, which is
# any stored object (a whole blob's own object, or a pack of new chunks a chunking job wrote).
chunks = Table(
    "chunks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("pack_key", String(300), nullable=False),
    Column("pack_offset", BigInteger, nullable=False),
    Column("length", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_chunks_pack_key", "pack_key"),
)

# Where a recipe's bytes are, merged: runs of chunks that follow each other in one pack (a
# fine-tune's recipe of thousands of chunks is a few dozen runs). A GET reads these, not the
# recipe; written with the recipe, deleted with it.
blob_extents = Table(
    "blob_extents",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("offset", BigInteger, primary_key=True),  # in the blob
    Column("length", BigInteger, nullable=False),
    Column("pack_key", String(300), nullable=False),
    Column("pack_offset", BigInteger, nullable=False),
)

# A pack being written: committed before its bytes are, deleted in the transaction that records
# its chunks. One left behind (a crash between the two) names an orphan the GC removes.
chunk_pack_intents = Table(
    "chunk_pack_intents",
    metadata,
    Column("pack_key", String(300), primary_key=True),  # the key its commit will give
    Column("upload", String(300), nullable=False),  # the upload handle it is written through
    Column("created_at", Float, nullable=False),
    Index("ix_chunk_pack_intents_created_at", "created_at"),
)

# A blob's recipe: its chunks in order; the concatenation is the blob's exact bytes.
blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("chunk_id", String(64), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", Integer, nullable=False),
    Index("ix_blob_chunks_chunk_id", "chunk_id"),
    Index("ix_blob_chunks_offset", "digest", "offset"),
)

# A repository may serve a blob only through one of these links (the security boundary).
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", Float, nullable=False),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("artifact_type", String(255)),
    Column("subject_digest", String(200)),
    Column("annotations", Text),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
)

# What each manifest points at (blobs and child manifests), for reachability and GC.
manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "manifest_id",
        Integer,
        ForeignKey("manifests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),  # "blob" | "manifest"
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("manifest_digest", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_tags_manifest", "repository_id", "manifest_digest"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("algorithm", String(16), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("hash_state", LargeBinary, nullable=False),
    Column("hash_state_version", String(32), nullable=False),
    Column("storage_handle", String(300), nullable=False),
    # A writer holds the upload while it streams a chunk, so two requests never interleave.
    Column("writer_token", String(64)),
    Column("writer_until", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# -- access control -------------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

namespaces = Table(
    "namespaces",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("visibility", String(16), nullable=False),  # "public" | "private"
    Column("robot_only_push", Boolean, nullable=False, default=False),
    Column("created_by", String(64)),
    Column("created_at", Float, nullable=False),
)

members = Table(
    "namespace_members",
    metadata,
    Column("namespace", String(255), ForeignKey("namespaces.name", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # admin | maintainer | developer | reader
)

robots = Table(
    "robots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("description", Text),
    Column("created_by", String(64)),
    Column("expires_at", Float),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

robot_permissions = Table(
    "robot_permissions",
    metadata,
    Column("robot_id", Integer, ForeignKey("robots.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace", String(255), primary_key=True),
    Column("actions", String(64), nullable=False),  # comma-separated: pull,push,delete
)

# Shared secrets every node must agree on (the token signing key).
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Failed logins per key ("user:<name>" / "addr:<ip>") in the current window, for rate limiting.
# Failed-login counters: "pair:<address>|<account>" and "addr:<address>" (see auth/throttle.py).
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("window_start", Float, nullable=False),  # first failure counted
    Column("failures", Integer, nullable=False),
    Column("last_failure", Float, nullable=False),
    Column("locked_until", Float, nullable=False),  # pairs only; 0 when not locked
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("actor", String(160)),
    Column("actor_kind", String(16)),  # user | robot | anonymous
    Column("remote", String(64)),
    Column("action", String(32), nullable=False),
    Column("repository", String(255)),
    Column("reference", String(200)),
    Column("outcome", String(16), nullable=False),  # success | denied | failure
    Column("detail", Text),
    Column("event_id", BigInteger),  # the outbox event it was made from (unique: idempotent)
    Index("ix_audit_time", "time"),
    Index("ux_audit_event", "event_id", unique=True),
    Index("ix_audit_actor", "actor", "time"),
    Index("ix_audit_repository", "repository", "time"),
)

# -- lifecycle: immutability, retention, quotas, soft delete, pull times, garbage collection ------

# Tags matching `pattern` (fnmatch glob) in a namespace cannot be moved or deleted, except the
# names in `exceptions` (comma-separated globs, e.g. "latest").
immutability_rules = Table(
    "immutability_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(255), nullable=False),
    Column("pattern", String(128), nullable=False),
    Column("exceptions", String(1024), nullable=False, default=""),
    Column("created_by", String(160)),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("namespace", "pattern", name="uq_immutability_namespace_pattern"),
)

# One retention policy per namespace (repository NULL) or per repository; `rules` is JSON.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(255), nullable=False),
    Column("repository", String(255)),
    Column("rules", Text, nullable=False),
    Column("created_by", String(160)),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("namespace", "repository", name="uq_retention_scope"),
)

quotas = Table(
    "quotas",
    metadata,
    Column("namespace", String(255), primary_key=True),
    Column("limit_bytes", BigInteger, nullable=False),
    Column("updated_by", String(160)),
    Column("updated_at", Float, nullable=False),
)

# Soft-deleted tags, restorable until `deleted_at` + the restore window; they keep their manifest
# reachable (GC treats them as roots) until then.
deleted_tags = Table(
    "deleted_tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(128), nullable=False),
    Column("manifest_digest", String(200), nullable=False),
    Column("deleted_at", Float, nullable=False),
    Column("deleted_by", String(160)),
    Index("ix_deleted_tags_repo_name", "repository_id", "name"),
    Index("ix_deleted_tags_time", "deleted_at"),
)

# Last pull per tag or digest, written in batches from memory (keyed by name: no join on pull).
pull_times = Table(
    "pull_times",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("reference", String(200), primary_key=True),
    Column("pulled_at", Float, nullable=False),
)

# Storage to free once its metadata row is gone and committed: blobs (key) and uploads (handle).
# A crash between the metadata delete and the storage delete leaves a row here for the next run.
pending_deletions = Table(
    "pending_deletions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # blob | upload
    Column("storage_key", String(300), nullable=False),
    Column("digest", String(200)),
    Column("size", BigInteger, nullable=False, default=0),
    Column("queued_at", Float, nullable=False),
    # Set by the collector run about to delete the storage (see gc/collector.py): a commit that
    # meets a claimed key never records it again.
    Column("claimed_at", Float),
    Column("claimer", String(64)),
    Index("ix_pending_deletions_key", "storage_key"),
)

gc_runs = Table(
    "gc_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("trigger", String(32), nullable=False),  # cli | schedule | api
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("result", Text),  # JSON counts and bytes
)

# -- usage totals (see metadata/queries/usage.py): what a quota check reads instead of an aggregate ------

# One row per distinct content of a namespace: kind "blob" counts the namespace's manifest
# references to the digest, kind "manifest" its manifest rows with the digest.
namespace_content = Table(
    "namespace_content",
    metadata,
    Column("namespace", String(255), primary_key=True),
    Column("kind", String(16), primary_key=True),  # blob | manifest
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("refs", Integer, nullable=False),
    Index("ix_namespace_content_digest", "digest"),
)

# Bytes per namespace: the sum of its namespace_content sizes, kept in the same transactions.
namespace_usage = Table(
    "namespace_usage",
    metadata,
    Column("namespace", String(255), primary_key=True),
    Column("bytes", BigInteger, nullable=False),
)

# -- jobs (see jobs/queue.py): the durable queue every background task runs through ------------

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
JOB_ACTIVE = ("queued", "running")

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    # At most one queued or running job per (kind, unique_key); finished ones keep theirs.
    Column("unique_key", String(255)),
    Column("payload", Text, nullable=False, default="{}"),  # JSON object
    Column("state", String(16), nullable=False),  # queued | running | done | failed | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", Float, nullable=False),  # not claimed before this time
    Column("lease_until", Float),  # running: another worker may take it over after this
    Column("leased_by", String(128)),  # the lease token of the claim (worker id + nonce)
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Index("ix_jobs_state_run_at", "state", "run_at"),
    Index("ix_jobs_kind_key", "kind", "unique_key", "id"),  # enqueue_once's look-up, any state
    Index(
        "uq_jobs_active_key", "kind", "unique_key", unique=True,
        sqlite_where=text("state IN ('queued', 'running')"),
        postgresql_where=text("state IN ('queued', 'running')"),
    ),
)

# -- domain events: the outbox every state change appends to, and each consumer's cursor --------

# The id is the order consumers see events in. Written in the transaction of the change itself.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("type", String(32), nullable=False),  # BlobPushed, ManifestPushed, TagMoved, ...
    Column("time", Float, nullable=False),
    Column("actor", String(160)),
    Column("actor_kind", String(16)),  # user | robot | anonymous | system
    Column("address", String(64)),
    Column("repository", String(255)),
    Column("digest", String(200)),
    Column("tag", String(200)),
    Column("payload", Text),  # JSON: what only this type of event carries
    Index("ix_events_repository", "repository", "id"),
)

# How far each consumer got: the id of the last event it has fully handled.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The lease of a non-transactional consumer: one process (on any node) runs it at a time.
    Column("holder", String(128)),
    Column("lease_until", Float),
)

# Events a consumer failed on `events_max_attempts` times and then went past.
event_dead_letters = Table(
    "event_dead_letters",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("repository", String(255)),
    Column("digest", String(200)),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("failed_at", Float, nullable=False),
)

# -- webhooks: subscriptions and the deliveries the `webhooks` consumer makes of events ---------

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("namespace", String(255), nullable=False),  # `*`: every namespace
    Column("url", Text, nullable=False),
    Column("events", String(255), nullable=False),  # comma-separated: push,pull,delete,tag
    Column("secret", Text),  # sealed (auth/sealing.py), never the plaintext
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
)

WEBHOOK_STATES = ("pending", "sending", "delivered", "failed")

# One row per (webhook, event): made in the transaction that moves the consumer's cursor.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("repository", String(255), nullable=False),
    Column("type", String(64), nullable=False),  # the CloudEvents type
    Column("body", Text, nullable=False),  # the CloudEvent as sent (the same on every attempt)
    Column("status", String(16), nullable=False),  # pending | sending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),  # sending: another run may take it over after this
    Column("queued_at", Float, nullable=False),  # given up `webhook_max_age` after this
    Column("last_status", Integer),  # the receiver's last HTTP status
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_queue", "webhook_id", "status", "repository", "id"),
)


# -- vulnerability data: OSV records imported offline (`moorage vulndb import`) ---------------

# One OSV record, ecosystem-agnostic. JSON columns: aliases (list), severity ({"cvss": [{type,
# vector, score}], "label"}). Times are Unix seconds; a withdrawn record no longer matches.
vuln_records = Table(
    "vuln_records",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("summary", Text, nullable=False),
    Column("details", Text, nullable=False),  # trimmed: the source keeps the full text
    Column("aliases", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("modified", Float, nullable=False),
    Column("published", Float),
    Column("withdrawn", Float),
    Column("imported_at", Float, nullable=False),
)

# A package a record affects, by OSV ecosystem (`Debian:12`) and name normalised for it.
vuln_affected = Table(
    "vuln_affected",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("record_id", String(200), ForeignKey("vuln_records.id", ondelete="CASCADE"),
           nullable=False),
    Column("ecosystem", String(100), nullable=False),
    Column("name", String(400), nullable=False),
    Column("purl", Text),
    Column("ranges", Text, nullable=False),  # JSON: [{"type", "events": [{kind: version}]}]
    Column("versions", Text, nullable=False),  # JSON: explicit affected versions
    Index("ix_vuln_affected_package", "ecosystem", "name"),
    Index("ix_vuln_affected_record", "record_id"),
)

# When data of a base ecosystem (`Debian`, `PyPI`) was last imported.
vuln_imports = Table(
    "vuln_imports",
    metadata,
    Column("ecosystem", String(100), primary_key=True),
    Column("imported_at", Float, nullable=False),
)


# The OSV data artifact (REPO:TAG of `vulndb_oci_ref`) last imported from, and its digest: the
# periodic import skips an artifact it has read already.
vuln_sources = Table(
    "vuln_sources",
    metadata,
    Column("source", String(400), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("imported_at", Float, nullable=False),
)

# -- ML models: the index the `post-push.models` job keeps (ModelPack, KitOps, Docker models) --

# One model manifest in one repository. JSON columns: annotations (the manifest's), metrics
# ({name: float} from `org.moorage.metrics.<name>`), details (descriptor, capabilities, parts).
models = Table(
    "models",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("repository", String(255), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("kind", String(32), nullable=False),  # modelpack | kitops | docker
    Column("name", String(400)),
    Column("family", String(200)),
    Column("version", String(200)),
    Column("architecture", String(200)),
    Column("params", Float),  # parameter count ("7B" -> 7e9)
    Column("precision", String(100)),
    Column("quantization", String(100)),
    Column("format", String(100)),
    Column("license", String(400)),
    Column("annotations", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("training_run", String(400)),
    Column("training_run_url", Text),
    Column("dataset_digest", String(200)),
    Column("base_digest", String(200)),  # fine-tuned from (org.opencontainers.image.base.digest)
    Column("base_name", String(400)),
    Column("details", Text, nullable=False),
    Column("parse_error", Text),  # why the config could not be read (the row is still here)
    Column("indexed_at", Float, nullable=False),
    UniqueConstraint("repository", "digest", name="uq_models_repository_digest"),
    Index("ix_models_digest", "digest"),
    Index("ix_models_base_digest", "base_digest"),
)

# A file of a model: a raw layer (offset 0) or a member of an uncompressed tar layer (the
# member's data offset); None when the layer is compressed (no byte offset to give).
model_files = Table(
    "model_files",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("model_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("layer_digest", String(200), nullable=False),
    Column("layer_offset", BigInteger),
    Column("media_type", String(255), nullable=False),
    Index("ix_model_files_model", "model_id"),
)

# A tensor of a safetensors file: where its bytes are in the layer blob (a Range GET reads it).
model_tensors = Table(
    "model_tensors",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("file_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("model_files.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("dtype", String(32), nullable=False),
    Column("shape", Text, nullable=False),  # JSON list of ints
    Column("blob_offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Index("ix_model_tensors_file", "file_id"),
)


# -- scan reports: one per (repository, manifest digest) ---------------------------------------

# status: pending | done | unsupported | failed. JSON columns (lists of objects): packages,
# vulnerabilities, secrets (redacted fingerprints only, never the secret), model_findings; os
# is the os-release summary ({id, version_id, ecosystem}) or NULL. vulndb_version: the newest
# import time of the vulnerability data the report was matched against.
scan_reports = Table(
    "scan_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("repository", String(255), nullable=False),
    Column("digest", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("error", Text),
    Column("queued_at", Float, nullable=False),
    Column("scanned_at", Float),
    Column("matched_at", Float),
    Column("vulndb_version", Float),
    Column("os", Text),
    Column("packages", Text, nullable=False),
    Column("vulnerabilities", Text, nullable=False),
    Column("secrets", Text, nullable=False),
    Column("model_findings", Text, nullable=False),
    UniqueConstraint("repository", "digest", name="uq_scan_reports_manifest"),
    Index("ix_scan_reports_status", "status", "id"),
)


# -- signatures: what each namespace trusts (`moorage trust add`) ------------------------------

# kind: `key` (a PEM public key: cosign, sigstore bundles, attestations), `x509` (PEM root
# certificates: notation chains must lead to one) or `keyless` (a Fulcio certificate for
# `identity` from `issuer`, checked against the sigstore trusted_root.json in `material`). fingerprint: SHA-256 hex of the DER of the
# key (or of the first certificate), shown to operators and used as the namespace's version.
trust_entries = Table(
    "trust_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(255), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("algorithm", String(32), nullable=False),  # ecdsa-p256, rsa-3072, ed25519, x509
    Column("fingerprint", String(64), nullable=False),
    Column("material", Text, nullable=False),  # PEM text (normalised), or a trusted_root.json
    Column("identity", String(255)),  # keyless: the certificate's SAN (email or URI)
    Column("issuer", String(255)),  # keyless: the OIDC issuer in the certificate
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
    UniqueConstraint("namespace", "name", name="uq_trust_entries_namespace_name"),
)


# -- admission policy at pull (`moorage policy set`) --------------------------------------------

# One row per namespace: its whole pull policy as JSON (see policy/pull.py), and a version that
# grows on every change (pull checks cache by it).
pull_policies = Table(
    "pull_policies",
    metadata,
    Column("namespace", String(255), primary_key=True),
    Column("policy", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(160)),
)


# -- upstream registries and pull-through cache namespaces -----------------------------------

# Another OCI registry (the cache's upstream; replication's target or source).
upstreams = Table(
    "upstreams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("auth", String(16), nullable=False),  # none | basic | token
    Column("username", String(255)),
    Column("secret", Text),  # sealed password or token (auth/sealing.py), never the plaintext
    Column("ca_file", Text),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
)

# A namespace whose repositories are pulled through from an upstream (`hub/x` → upstream `x`).
cache_namespaces = Table(
    "cache_namespaces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("namespace", String(255), nullable=False, unique=True),
    Column("upstream_id", Integer, ForeignKey("upstreams.id"), nullable=False),
    Column("revalidate", Float, nullable=False),  # seconds a cached tag is served unchecked
    Column("created_at", Float, nullable=False),
)

# When a cached tag was last confirmed against the upstream.
cache_tag_checks = Table(
    "cache_tag_checks",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("checked_at", Float, nullable=False),
)

cache_tag_lists = Table(
    "cache_tag_lists",
    metadata,
    Column("repository", String(255), primary_key=True),  # the cache repository (hub/lib/x)
    Column("tags", Text, nullable=False),  # JSON: the upstream's tags, sorted
    Column("fetched_at", Float, nullable=False),
)

# A cold blob being fetched: other workers and nodes wait for its holder instead of fetching too.
cache_fetches = Table(
    "cache_fetches",
    metadata,
    Column("key", String(500), primary_key=True),  # repository@digest
    Column("owner", String(64), nullable=False),
    Column("lease_until", Float, nullable=False),
)

replication_rules = Table(
    "replication_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("direction", String(8), nullable=False),  # push | pull
    Column("upstream_id", Integer, ForeignKey("upstreams.id"), nullable=False),
    Column("repos", Text, nullable=False),  # comma-separated globs ('**' crosses '/')
    Column("tags", Text),  # comma-separated globs; NULL: every tag
    Column("on_push", Boolean, nullable=False, default=False),
    Column("delete_mirrors", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
    Column("platforms", Text),  # comma-separated os/arch[/variant]; NULL: every platform
    Column("artifact_types", Text),  # comma-separated media types; NULL: every artifact
    Column("schedule", String(120)),  # 5-field cron (UTC); NULL: no schedule
    Column("scheduled_at", Float),  # the last cron tick a run was queued for
    Column("bandwidth", BigInteger),  # bytes per second of a run; NULL: unlimited
)

replication_runs = Table(
    "replication_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, ForeignKey("replication_rules.id", ondelete="CASCADE"),
           nullable=False),
    Column("job_id", Integer, unique=True),  # the replication.run job (its retries share it)
    Column("state", String(16), nullable=False),  # running | done | failed
    Column("trigger", String(300)),  # manual | push repo:tag
    Column("manifests", Integer, nullable=False, default=0),
    Column("blobs", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("mounted", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),  # tags deleted (--delete-mirrors)
    Column("error", Text),
    Column("failures", Text, nullable=False, default="[]"),  # JSON [{at, error}]
    Column("uploads", Text, nullable=False, default="{}"),  # JSON {repo@digest: upload URL}
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("notes", Text),  # JSON [text]: what a filter left out (an index --platform split)
    Index("replication_runs_rule", "rule_id", "id"),
)


# -- image size insights: one report per image manifest (`moorage insights`) --------------------

# status: done | failed | unsupported; report: the JSON document `insights.service` documents.
# Deleted with its manifest (the foreign key cascades).
image_insights = Table(
    "image_insights",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("repository", String(255), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("report", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# OIDC workload identity: the issuers whose ID tokens `/token` exchanges, and their rules.
oidc_issuers = Table(
    "oidc_issuers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(500), nullable=False, unique=True),  # the exact `iss`
    Column("audience", String(500), nullable=False),  # `aud` must contain it
    Column("jwks_url", Text),  # fetched (cached) by the server
    Column("jwks", Text),  # or the JWKS document itself (air-gapped sites)
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
)

# Claims that must all match (JSON {claim: glob}) grant namespace permissions (JSON {ns: [a]}).
oidc_rules = Table(
    "oidc_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer_id", Integer, ForeignKey("oidc_issuers.id", ondelete="CASCADE"),
           nullable=False),
    Column("claims", Text, nullable=False),
    Column("permissions", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(160)),
    Index("oidc_rules_issuer", "issuer_id", "id"),
)

# -- rate limits --------------------------------------------------------------------------------

# One row per limited target: a user, a robot, a namespace, or the anonymous default ('*'); its
# rates as JSON (see policy/ratelimit.py).
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("target_kind", String(16), primary_key=True),  # user | robot | namespace | anonymous
    Column("target", String(255), primary_key=True),
    Column("limits", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(160)),
)

# One GCRA bucket per key (kind + who + where): its theoretical arrival time, and until when its
# refusal was already logged and audited (once per window across workers and nodes).
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("tat", Float(precision=53), nullable=False),
    Column("noticed_until", Float(precision=53)),
)
