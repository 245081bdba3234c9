"""`moorage settings`: the effective settings, or the README's settings tables generated from
the one Settings definition (`--markdown`, `--update README.md`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from .common import Config, Database, DataDir, Storage, Target, fail, print_table

# `moorage serve` flags that set a field (the rest are environment or config file only).
FLAGS = {
    "listen": "--listen HOST:PORT",
    "data_dir": "--data-dir DIR",
    "workers": "--workers N",
    "database_url": "--database URL",
    "storage_url": "--storage URL",
    "allow_sparse": "--allow-sparse",
    "fsync": "--no-fsync",
    "auth": "--no-auth",
}
SECRET_FIELDS = {"admin_password", "s3_secret_access_key", "secrets_key", "secrets_key_previous",
                 "ui_oidc_client_secret"}
_BYTES = re.compile(r"(_bytes|_size|_length)$")
BLOCK = re.compile(r"(<!-- settings:begin (\S+) -->\n)(.*?)(<!-- settings:end -->)", re.DOTALL)


def _default(name: str, value: object) -> str:
    if name == "workers":
        return "number of cores"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if isinstance(value, int) and _BYTES.search(name) and value >= 1024:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{value // size} {unit}"
    if isinstance(value, float):
        text = f"{value:g}"
        for unit, size in (("d", 86400), ("h", 3600)):
            if value >= size and value % size == 0:
                return f"{text} ({value / size:g} {unit})"
        return text
    if isinstance(value, int):
        return f"{value:,}"
    return f"`{value}`"


def markdown_tables() -> dict[str, str]:
    """Section slug (server, scale-out, lifecycle) → its Markdown table of settings."""
    from ..config import documented

    tables: dict[str, list[str]] = {}
    for d in documented():
        slug = d.section.split()[0]
        rows = tables.setdefault(slug, [
            "| environment / config file key | flag | default | what it does |",
            "| --- | --- | --- | --- |",
        ])
        flag = f"`{FLAGS[d.name]}`" if d.name in FLAGS else ""
        rows.append(f"| `{d.env}` / `{d.name}` | {flag} | {_default(d.name, d.default)} | "
                    f"{d.description.replace('|', '/')} |")
    return {slug: "\n".join(rows) + "\n" for slug, rows in tables.items()}


def update_readme(text: str) -> str:
    """`text` with every `<!-- settings:begin SLUG -->` … `<!-- settings:end -->` block
    replaced by the generated table of that section."""
    tables = markdown_tables()

    def block(m: re.Match[str]) -> str:
        if m.group(2) not in tables:
            raise ValueError(f"no settings section {m.group(2)!r}; known: {', '.join(tables)}")
        return m.group(1) + tables[m.group(2)] + m.group(4)

    return BLOCK.sub(block, text)


# deploy/moorage.toml: what a packaged install sets; every other setting is shown commented out
# at its default. Settings without a default show an example value.
EXAMPLE_SET = {"listen": "0.0.0.0:5000", "data_dir": "/var/lib/moorage", "log_format": "json"}
EXAMPLE_VALUES = {
    "database_url": "postgresql://moorage@db.internal/moorage",
    "storage_url": "s3://moorage-blobs/registry",
    "admin_password": "change-me",
    "token_realm": "https://registry.example.com/token",
    "secrets_key": "base64-of-32-random-bytes",
    "tls_cert_file": "/etc/moorage/tls/fullchain.pem",
    "tls_key_file": "/etc/moorage/tls/privkey.pem",
    "s3_endpoint": "https://s3.eu-west-1.amazonaws.com",
    "s3_region": "eu-west-1",
    "s3_access_key_id": "AKIA...",
    "s3_secret_access_key": "...",
    "spool_dir": "/var/tmp/moorage",
}


def _toml(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def example_toml() -> str:
    """The annotated example configuration file (deploy/moorage.toml), from Settings."""
    from ..config import Settings, documented

    defaults = Settings()
    lines = [
        "# Moorage configuration: every setting, generated from src/moorage/config.py",
        "# (`moorage settings --example > deploy/moorage.toml`). Keys are the setting names;",
        "# MOORAGE_<NAME> variables and command-line flags override them.",
        "# Use: moorage serve --config /etc/moorage/moorage.toml (or MOORAGE_CONFIG).",
    ]
    section = None
    for d in documented():
        if d.section != section:
            section = d.section
            lines += ["", f"# -- {section} " + "-" * max(3, 90 - len(section))]
        default = getattr(defaults, d.name)
        shown = "number of cores" if d.name == "workers" else (
            "unset" if default is None else _toml(default))
        lines.append(f"# {d.description} [{d.env}; default {shown}]")
        if d.name in EXAMPLE_SET:
            lines.append(f"{d.name} = {_toml(EXAMPLE_SET[d.name])}")
        else:
            value = EXAMPLE_VALUES.get(d.name, "") if default is None else default
            if d.name == "workers":
                value = 4  # the default depends on the machine
            lines.append(f"# {d.name} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def settings(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="print the documentation tables (Markdown)")
    ] = False,
    example: Annotated[
        bool, typer.Option("--example", help="print an annotated moorage.toml of every setting")
    ] = False,
    update: Annotated[
        Path | None, typer.Option(help="rewrite the settings blocks of this file (README.md)")
    ] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Show the settings these options and MOORAGE_* variables give (secrets masked)."""
    from dataclasses import fields

    if update is not None:
        try:
            update.write_text(update_readme(update.read_text()))
        except (OSError, ValueError) as exc:
            fail(str(exc), 2)
        typer.echo(f"updated the settings tables in {update}")
        return
    if example:
        typer.echo(example_toml(), nl=False)
        return
    if markdown:
        for slug, table in markdown_tables().items():
            typer.echo(f"<!-- settings:begin {slug} -->\n{table}<!-- settings:end -->\n")
        return
    current = Target(data_dir, database, storage, config).settings()
    rows = []
    for f in fields(current):
        value = getattr(current, f.name)
        if f.name in SECRET_FIELDS and value is not None:
            value = "(set)"
        rows.append([f.name, f"MOORAGE_{f.name.upper()}", "unset" if value is None else value])
    print_table(["SETTING", "ENVIRONMENT", "VALUE"], rows)
