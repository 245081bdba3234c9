"""`moorage dedup stats [NAMESPACE]`: what chunk-level dedup saves, per namespace."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    Config,
    Database,
    DataDir,
    JsonFlag,
    Storage,
    Target,
    open_existing,
    print_json,
    print_table,
)

dedup_app = typer.Typer(help="Chunk-level dedup: bytes saved and the dedup ratio.",
                        no_args_is_help=True)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@dedup_app.command("stats")
def stats(
    namespace: Annotated[str | None, typer.Argument(help="one namespace (default: all)")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Logical bytes (what clients pull), stored bytes, bytes saved and the ratio."""
    reg = open_existing(Target(data_dir, database, storage, config).settings())
    found = reg.chunks.stats(namespace)
    if json_output:
        print_json({"namespaces": found})
        return
    print_table(["NAMESPACE", "LOGICAL", "STORED", "SAVED", "RATIO"],
                [[name, _mib(v["logical"]), _mib(v["stored"]), _mib(v["saved"]),
                  f"{v['ratio']:.2f}"] for name, v in found.items()],
                empty="no blobs")
