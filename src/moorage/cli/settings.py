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
SECRET_FIELDS = {"admin_password", "s3_secret_access_key", "secrets_key"}
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


def settings(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="print the documentation tables (Markdown)")
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
