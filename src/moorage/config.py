"""One typed Settings object: defaults that work on a laptop, overridable by MOORAGE_* variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:5000"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Everything `moorage serve` can be told."""

    listen: str = DEFAULT_LISTEN
    data_dir: Path = Path("data")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    database_url: str | None = None  # None: SQLite inside data_dir; postgresql://...
    storage_url: str | None = None  # None: files under data_dir; s3://bucket/prefix
    allow_sparse: bool = False
    fsync: bool = True
    chunk_min_length: int = 1 << 20  # advertised, not enforced: fewer, larger chunks are faster
    max_manifest_bytes: int = 4 * 1024 * 1024
    page_size_max: int = 10_000
    upload_lease_seconds: float = 30.0
    shutdown_timeout: float = 30.0
    access_log: bool = False
    auth: bool = True
    admin_password: str | None = None  # first start only; generated and printed when unset
    token_ttl: float = 300.0
    token_service: str = "moorage"
    token_realm: str | None = None  # default: <scheme>://<host of the request>/token
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For names the client
    login_address_limit: int = 100  # failed logins per address in 5 min before lockouts lengthen
    log_format: str = "auto"  # auto | json | text
    log_level: str = "INFO"
    # -- scale-out (PostgreSQL + S3) ------------------------------------------------------------
    db_pool_size: int = 5  # connections per worker process (PostgreSQL)
    s3_endpoint: str | None = None  # default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS
    s3_region: str | None = None  # default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
    s3_access_key_id: str | None = None  # default: AWS_ACCESS_KEY_ID
    s3_secret_access_key: str | None = None  # default: AWS_SECRET_ACCESS_KEY
    s3_part_size: int = 16 << 20  # first multipart parts; doubles every 1,000 parts
    spool_dir: str | None = None  # local temp files for chunks of unknown length (S3)
    blob_redirect: bool = True  # S3: GET of a blob redirects to a presigned URL (else proxied)
    blob_redirect_min_bytes: int = 1 << 20  # smaller blobs are proxied: a redirect costs more
    presign_expires: int = 300  # seconds a presigned blob URL stays valid
    # -- lifecycle (durations in seconds) --
    gc_grace_period: float = 86400.0  # unreferenced content survives at least this long
    gc_interval: float = 3600.0  # scheduled retention + GC in the background; 0 turns it off
    gc_untagged: bool = True  # collect manifests no tag/index/subject reaches (after the grace)
    upload_ttl: float = 86400.0  # upload sessions idle this long expire
    tag_restore_window: float = 7 * 86400.0  # deleted tags stay restorable this long
    pull_flush_interval: float = 5.0  # pull times are batched in memory this long

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

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
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"MOORAGE_{f.name.upper()}")
            if raw is None:
                if f.name in file_values:
                    raw = file_values[f.name]
                    if not isinstance(raw, str):
                        values[f.name] = Path(raw) if f.name == "data_dir" else raw
                        continue
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

    def validate(self) -> None:
        """Reject settings that cannot work, with a message a user can act on."""
        if ":" not in self.listen:
            raise ValueError(f"--listen must be HOST:PORT, got {self.listen!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port in --listen {self.listen!r}")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.database_url and not self.database_url.startswith(
            ("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")
        ):
            raise ValueError(
                f"--database must be a postgresql:// or sqlite:/// URL, got {self.database_url!r}"
            )
        if self.storage_url and not self.storage_url.startswith("s3://"):
            raise ValueError(f"--storage must be s3://bucket/prefix, got {self.storage_url!r}")
        if self.login_address_limit < 1:
            raise ValueError("login_address_limit must be at least 1")
        try:
            proxy_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None
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
