"""One typed Settings object: defaults that work on a laptop, overridable by MOORAGE_* variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_LISTEN = "127.0.0.1:5000"
REDIRECT_MODES = ("large", "always", "never")
# MOORAGE_BLOB_REDIRECT was a boolean: on meant "large", off meant "never".
_REDIRECT_ALIASES = {"1": "large", "true": "large", "yes": "large", "on": "large",
                     "0": "never", "false": "never", "no": "never", "off": "never"}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Everything `moorage serve` can be told."""

    # -- server ---------------------------------------------------------------------------------
    listen: str = DEFAULT_LISTEN  # address to listen on, HOST:PORT
    data_dir: Path = Path("data")  # SQLite `moorage.db`, `blobs/`, `uploads/` (also the CLI's)
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # processes sharing the port
    database_url: str | None = None  # postgresql://… instead of SQLite in the data dir
    storage_url: str | None = None  # s3://bucket/prefix or file:///path instead of the data dir
    allow_sparse: bool = False  # accept manifests/indexes whose blobs or children are absent
    fsync: bool = True  # fsync blobs and SQLite commits before answering (off: faster, unsafe)
    chunk_min_length: int = 1 << 20  # advertised OCI-Chunk-Min-Length (advisory, not enforced)
    max_manifest_bytes: int = 4 * 1024 * 1024  # largest manifest accepted (413 beyond)
    page_size_max: int = 10_000  # largest page of tags or catalog (`n`)
    upload_lease_seconds: float = 30.0  # a dead writer's hold on an upload expires after this
    upload_checkpoint_bytes: int = 256 << 20  # a streamed PATCH checkpoints this often (0: off)
    shutdown_timeout: float = 30.0  # seconds in-flight requests get after SIGTERM/SIGINT
    access_log: bool = False  # log every request (not only writes and errors)
    auth: bool = True  # authentication (off: an open registry for throwaway use)
    admin_password: str | None = None  # password of `admin` on first start (else generated)
    token_ttl: float = 300.0  # lifetime of issued bearer tokens, seconds
    token_service: str = "moorage"  # `service` of the token challenge and the tokens' audience
    token_realm: str | None = None  # token endpoint URL in challenges (default: request's /token)
    ui_session_seconds: float = 8 * 3600.0  # lifetime of a web UI sign-in (a signed cookie)
    ui_oidc_issuer: str | None = None  # OIDC provider (issuer URL) for UI single sign-on; unset: off
    ui_oidc_client_id: str | None = None  # client id of the UI at that provider (the ID token's aud)
    ui_oidc_client_secret: str | None = None  # client secret of the UI at that provider
    ui_oidc_username_claim: str = "preferred_username"  # ID-token claim naming the Moorage account
    ui_oidc_admin_group: str | None = None  # members (`groups` claim) are server admins; unset: no sync
    ui_oidc_create_users: bool = False  # create unknown accounts on SSO sign-in (plain users)
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For names the client
    trust_proxy_headers: bool = False  # honour X-Forwarded-Proto/Host (from trusted_proxies if set)
    tls_cert_file: str | None = None  # PEM certificate chain: serve HTTPS (reloaded on SIGHUP)
    tls_key_file: str | None = None  # PEM private key of tls_cert_file
    keepalive_timeout: float = 75.0  # seconds an idle HTTP/1.1 connection stays open
    login_address_limit: int = 100  # failed logins per address in 5 min before lockouts lengthen
    oidc_leeway: float = 60.0  # seconds of clock skew allowed on an OIDC ID token's exp/nbf/iat
    oidc_max_token_age: float = 3600.0  # OIDC ID tokens issued (iat) longer ago are refused
    oidc_jwks_timeout: float = 5.0  # seconds a fetch of an issuer's JWKS URL may take
    oidc_jwks_cache_seconds: float = 3600.0  # a fetched JWKS is used this long, then fetched again
    oidc_jwks_refresh_interval: float = 60.0  # an unknown `kid` refetches a JWKS at most this often
    ratelimit_cache_seconds: float = 5.0  # seconds a process caches the configured rate limits
    secrets_key: str | None = None  # base64 of 32 bytes sealing stored secrets (default: a key file)
    secrets_key_previous: str | None = None  # comma-separated old keys still read (key rotation)
    log_format: str = "auto"  # json, text, or auto (text on a terminal, else JSON)
    log_level: str = "INFO"  # DEBUG, INFO, WARNING or ERROR
    # -- scale-out (PostgreSQL + S3) ------------------------------------------------------------
    db_pool_size: int = 5  # PostgreSQL connections per worker process (as many again overflow)
    s3_endpoint: str | None = None  # S3 endpoint URL (default: AWS_ENDPOINT_URL_S3 / _URL, AWS)
    s3_region: str | None = None  # S3 region (default: AWS_REGION / AWS_DEFAULT_REGION, us-east-1)
    s3_access_key_id: str | None = None  # S3 access key (default: AWS_ACCESS_KEY_ID)
    s3_secret_access_key: str | None = None  # S3 secret key (default: AWS_SECRET_ACCESS_KEY)
    s3_part_size: int = 16 << 20  # first multipart part size; doubles every 1,000 parts
    s3_sse: str = ""  # S3 server-side encryption of every object: AES256, aws:kms or "" (none)
    s3_sse_kms_key_id: str | None = None  # KMS key id of s3_sse = aws:kms (default: the bucket's)
    spool_dir: str | None = None  # local temp files for S3 chunks of unknown length (default: tmp)
    blob_redirect: str = "large"  # S3 blob GET: 307 to a presigned URL for large, always or never
    blob_redirect_min_bytes: int = 64 << 20  # `large`: smaller blobs are proxied, digest header on
    presign_expires: int = 300  # seconds a presigned blob URL stays valid
    # -- lifecycle (durations in seconds) -------------------------------------------------------
    gc_grace_period: float = 86400.0  # unreferenced content survives at least this long
    gc_interval: float = 3600.0  # scheduled retention + GC in the background; 0 turns it off
    gc_untagged: bool = True  # collect manifests no tag/index/subject reaches (after the grace)
    upload_ttl: float = 86400.0  # idle upload sessions expire (multipart uploads aborted)
    tag_restore_window: float = 7 * 86400.0  # deleted tags stay restorable this long
    pull_flush_interval: float = 5.0  # pull times are batched in memory this long
    upload_expiry_interval: float = 3600.0  # scheduled expiry of idle uploads; 0 turns it off
    jobs_in_server: bool = True  # serve's workers run jobs (off: only `moorage worker` does)
    job_concurrency: int = 1  # jobs each serve worker or `moorage worker` runs at once
    job_lease_seconds: float = 60.0  # job lease, renewed while it runs; a dead worker's runs out
    job_poll_interval: float = 1.0  # how often an idle job runner looks for due jobs
    job_backoff_base: float = 10.0  # delay before a failed job's first retry; doubles per attempt
    job_backoff_max: float = 3600.0  # longest delay between retries of a failed job
    job_max_attempts: int = 5  # attempts before a job is marked failed
    # -- events (the domain-event outbox and its dispatcher; durations in seconds) -------------
    events_poll_interval: float = 0.25  # an idle consumer looks for new outbox events this often
    events_dispatch_delay: float = 0.0  # hold delivery back this long after start (tests)
    events_max_attempts: int = 10  # failures on one event before a consumer dead-letters it
    events_lease_seconds: float = 30.0  # lease of a non-transactional consumer (one node runs it)
    events_retention: float = 7 * 86400.0  # outbox events older than this are pruned once handled
    events_prune_interval: float = 3600.0  # how often the outbox.prune job runs (0: never)
    alert_login_failures: int = 20  # refused logins from one address in 5 min that alert (0: off)
    alert_mass_deletes: int = 50  # deletes by one principal within alert_window that alert (0: off)
    alert_window: float = 300.0  # seconds the mass-delete and pull-spike counts run over
    alert_robot_new_address: bool = True  # alert when a robot is used from a new address
    alert_pull_spike: int = 2000  # manifest pulls by one principal within alert_window (0: off)
    metrics_top_repositories: int = 20  # /metrics: repositories with own push/pull series
    metrics_cache_seconds: float = 10.0  # /metrics: registry gauges are read this often at most
    worker_metrics_listen: str = ""  # moorage worker: serve /metrics on HOST:PORT ("": off)
    webhook_timeout: float = 10.0  # seconds one webhook request may take
    webhook_backoff_max: float = 3600.0  # longest wait between retries of a webhook delivery
    webhook_max_age: float = 86400.0  # a delivery still failing after this long is given up
    webhook_concurrency: int = 4  # requests one delivery run sends at once
    # -- pull-through cache ---------------------------------------------------------------------
    cache_upstream_timeout: float = 30.0  # seconds a cache waits for an upstream's answer (then stale)
    cache_referrers_ttl: float = 60.0  # seconds a cache keeps an upstream's referrers list
    cache_fetch_lease_seconds: float = 30.0  # a cold-blob fetch lease other workers wait behind
    # -- replication ----------------------------------------------------------------------------
    replication_on_push: bool = True  # --on-push replication rules queue a run for each push
    replication_chunk_size: int = 256 << 20  # bytes per (streamed) PATCH of a replicated blob push
    replication_retries: int = 5  # broken requests in a row a transfer retries before the run fails
    replication_parallel_blobs: int = 4  # blobs of one manifest a replication run moves at a time
    replication_schedule_interval: float = 30.0  # seconds between --schedule checks (0: off)
    # -- chunk-level dedup ---------------------------------------------------------------------
    chunk_dedup: bool = True  # chunk each pushed layer blob (a job) and store shared chunks once
    chunk_min_blob_size: int = 16 << 20  # smaller blobs are never chunked (they stay whole)
    chunk_min_saving: float = 0.10  # share of a blob that must be stored already to chunk it
    chunk_avg_size: int = 64 << 10  # FastCDC target chunk bytes (min = avg/4, max = avg*4)
    # -- scanning (supply chain) ---------------------------------------------------------------
    sbom_on_push: bool = True  # generate a CycloneDX SBOM referrer for each pushed image (a job)
    insights_on_push: bool = True  # compute image size insights for each pushed image (a job)
    insights_top_files: int = 50  # largest files (and overwritten / deleted ones) a report lists
    insights_max_paths: int = 200_000  # paths tracked across layers; beyond, reports say truncated
    models_on_push: bool = True  # index each pushed model manifest: fields, files, tensors (a job)
    scan_max_entries: int = 500_000  # tar entries one image scan reads before it gives up
    scan_max_bytes: int = 20 << 30  # decompressed layer bytes one image scan reads at most
    scan_max_ratio: float = 200.0  # largest compression ratio of a layer (zip-bomb guard)
    scan_secrets: bool = True  # look for secrets (keys, tokens, credential files) in every layer
    scan_secret_max_file_bytes: int = 1 << 20  # larger text files are not read for secrets
    scan_models: bool = True  # check model files (pickle imports, safetensors/GGUF headers)
    scan_model_max_bytes: int = 8 << 30  # larger pickle-based model files: reported unchecked
    vulndb_oci_ref: str = ""  # an OSV data artifact here (REPO:TAG) the vulndb imports on schedule
    vulndb_oci_interval: float = 3600.0  # seconds between imports of vulndb_oci_ref (0: never)
    pull_policy_cache_seconds: float = 3.0  # seconds a process caches a namespace pull policy

    def __post_init__(self) -> None:
        mode = self.blob_redirect
        if isinstance(mode, bool):
            mode = "large" if mode else "never"
        mode = str(mode).strip().lower()
        object.__setattr__(self, "blob_redirect", _REDIRECT_ALIASES.get(mode, mode))

    @property
    def redirect_min_bytes(self) -> int | None:
        """Smallest blob a GET redirects to the store (None: never redirect)."""
        if self.blob_redirect == "never":
            return None
        return 0 if self.blob_redirect == "always" else self.blob_redirect_min_bytes

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert_file else "http"

    @property
    def is_scaled_out(self) -> bool:
        return bool(self.database_url and not self.database_url.startswith("sqlite"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then a TOML file (MOORAGE_CONFIG or `config_file=`), then MOORAGE_<FIELD>
        variables, then explicit overrides (CLI flags)."""
        env = dict(os.environ if env is None else env)
        # Short aliases the scale-out docs use.
        for alias, name in (("MOORAGE_DATABASE", "MOORAGE_DATABASE_URL"),
                            ("MOORAGE_STORAGE", "MOORAGE_STORAGE_URL")):
            if alias in env and name not in env:
                env[name] = env[alias]
        config_file = overrides.pop("config_file", None) or env.get("MOORAGE_CONFIG")
        file_values: dict[str, object] = {}
        if config_file:
            file_values = _load_toml(Path(str(config_file)), {f.name for f in fields(cls)})
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw: Any = env.get(f"MOORAGE_{f.name.upper()}")
            if raw is None:
                if f.name in file_values:
                    given = file_values[f.name]
                    if not isinstance(given, str):
                        values[f.name] = Path(str(given)) if f.name == "data_dir" else given
                        continue
                    raw = given
                else:
                    continue
            default = getattr(cls(), f.name)
            if isinstance(default, bool):
                values[f.name] = _bool(raw)
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def to_json(self) -> str:
        """These settings as JSON (from_json reads them back unchanged)."""
        import json

        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, default=str)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings written by to_json."""
        import json

        values = json.loads(text)
        values["data_dir"] = Path(values["data_dir"])
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def validate(self) -> None:
        """Reject settings that cannot work, with a message a user can act on."""
        if ":" not in self.listen:
            raise ValueError(f"--listen must be HOST:PORT, got {self.listen!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port in --listen {self.listen!r}")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.worker_metrics_listen:
            split_address(self.worker_metrics_listen, "--metrics-listen")
        if self.database_url and not self.database_url.startswith(
            ("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")
        ):
            raise ValueError(
                f"--database must be a postgresql:// or sqlite:/// URL, got {self.database_url!r}"
            )
        if self.storage_url:
            from .storage.factory import scheme_of

            scheme_of(self.storage_url)  # an unknown driver is a startup error, naming the known
        if self.upload_checkpoint_bytes < 0:
            raise ValueError("upload_checkpoint_bytes must be 0 (off) or a positive byte count")
        if self.blob_redirect not in REDIRECT_MODES:
            raise ValueError(
                f"blob_redirect must be one of {', '.join(REDIRECT_MODES)} (or 1/0), "
                f"got {self.blob_redirect!r}"
            )
        if self.blob_redirect_min_bytes < 0:
            raise ValueError("blob_redirect_min_bytes must be 0 or more")
        if self.login_address_limit < 1:
            raise ValueError("login_address_limit must be at least 1")
        if self.ui_oidc_issuer:
            if not self.ui_oidc_client_id:
                raise ValueError("ui_oidc_issuer needs ui_oidc_client_id (the UI's client at it)")
            _check_issuer_url(self.ui_oidc_issuer)
        if min(self.oidc_leeway, self.oidc_jwks_refresh_interval) < 0 or min(
                self.oidc_max_token_age, self.oidc_jwks_timeout, self.oidc_jwks_cache_seconds) <= 0:
            raise ValueError("oidc_max_token_age, oidc_jwks_timeout and oidc_jwks_cache_seconds "
                             "must be positive, oidc_leeway and oidc_jwks_refresh_interval 0 "
                             "or more")
        if self.ratelimit_cache_seconds < 0:
            raise ValueError("ratelimit_cache_seconds must be 0 or more")
        try:
            proxy_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None
        if self.job_concurrency < 1:
            raise ValueError("job_concurrency must be at least 1")
        if self.job_max_attempts < 1:
            raise ValueError("job_max_attempts must be at least 1")
        if self.job_lease_seconds <= 0 or self.job_poll_interval <= 0:
            raise ValueError("job_lease_seconds and job_poll_interval must be positive")
        if self.events_max_attempts < 1:
            raise ValueError("events_max_attempts must be at least 1")
        if self.events_lease_seconds <= 0 or self.events_retention < 0:
            raise ValueError("events_lease_seconds must be positive, events_retention 0 or more")
        if self.webhook_timeout <= 0 or self.webhook_backoff_max <= 0 or self.webhook_max_age < 0:
            raise ValueError("webhook_timeout and webhook_backoff_max must be positive, "
                             "webhook_max_age 0 or more")
        if self.cache_upstream_timeout <= 0 or self.cache_fetch_lease_seconds <= 0 \
                or self.cache_referrers_ttl < 0:
            raise ValueError("cache_upstream_timeout and cache_fetch_lease_seconds must be "
                             "positive, cache_referrers_ttl 0 or more")
        if self.webhook_concurrency < 1:
            raise ValueError("webhook_concurrency must be at least 1")
        if self.replication_chunk_size < 1 or self.replication_retries < 0 \
                or self.replication_parallel_blobs < 1 or self.replication_schedule_interval < 0:
            raise ValueError("replication_chunk_size and replication_parallel_blobs must be "
                             "positive, replication_retries and replication_schedule_interval "
                             "0 or more")
        if self.scan_secret_max_file_bytes < 1 or self.scan_model_max_bytes < 1:
            raise ValueError("scan_secret_max_file_bytes and scan_model_max_bytes must be "
                             "positive")
        if self.scan_max_entries < 1 or self.scan_max_bytes < 1 or self.scan_max_ratio <= 1:
            raise ValueError("scan_max_entries and scan_max_bytes must be positive, "
                             "scan_max_ratio above 1")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        if self.s3_sse not in ("", "AES256", "aws:kms"):
            raise ValueError(f"s3_sse must be AES256, aws:kms or empty, got {self.s3_sse!r}")
        if self.s3_sse_kms_key_id and self.s3_sse != "aws:kms":
            raise ValueError("s3_sse_kms_key_id needs s3_sse = aws:kms")
        if self.vulndb_oci_interval < 0:
            raise ValueError("vulndb_oci_interval must be 0 or more")
        if self.s3_part_size < 5 << 20:
            raise ValueError("s3_part_size must be at least 5 MiB (S3's minimum part size)")


def proxy_networks(value: str | list[str]) -> tuple[IPNetwork, ...]:
    """The networks of a comma-separated CIDR list (`10.0.0.0/8, 192.168.1.7`)."""
    if not isinstance(value, str):  # a TOML array
        value = ",".join(str(v) for v in value)
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in value.split(",") if part.strip())


def _load_toml(path: Path, known: set[str]) -> dict[str, object]:
    """Settings from a TOML file: top-level keys named like the fields (`database_url = ...`)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from None
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
    return data


@dataclass(frozen=True)
class SettingDoc:
    """One setting as the docs show it."""

    name: str
    env: str
    default: object
    description: str
    section: str


def documented() -> list[SettingDoc]:
    """Every Settings field with its description: the trailing comment on its line in this
    file, and the section of the `# -- name --` line above it (one definition, no copy)."""
    import inspect
    import io
    import re
    import tokenize

    comments: dict[str, tuple[str, str]] = {}
    section = "server"
    pending: str | None = None
    source = inspect.getsource(Settings)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            heading = re.match(r"#\s*--\s*([^-].*?)\s*-*$", tok.string)
            if heading and tok.line.strip() == tok.string.strip():
                section = heading.group(1)
            elif pending is not None:
                comments[pending] = (tok.string.lstrip("# ").strip(), section)
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.line[4:].startswith(
            tok.string + ":"
        ):
            pending = tok.string
        elif tok.type == tokenize.NEWLINE:
            pending = None
    defaults = Settings()
    out = []
    for f in fields(Settings):
        description, sect = comments.get(f.name, ("", section))
        default: object = getattr(defaults, f.name)
        if f.name == "workers":
            default = "number of cores"
        out.append(SettingDoc(f.name, f"MOORAGE_{f.name.upper()}", default, description, sect))
    return out


def _check_issuer_url(url: str) -> None:
    """An OIDC issuer is https://, or http:// only to this machine (a local test provider)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise ValueError(f"ui_oidc_issuer must be an https:// URL (http:// only to this "
                         f"machine), got {url!r}")


def split_address(text: str, option: str) -> tuple[str, int]:
    """(host, port) of a HOST:PORT option ([::1]:PORT for IPv6); ValueError naming `option`."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{option} must be HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
