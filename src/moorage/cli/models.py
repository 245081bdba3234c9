"""`moorage models search|show|files|diff`: the model index (ModelPack, KitOps, Docker models)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import (
    Config,
    Database,
    DataDir,
    JsonFlag,
    Storage,
    Target,
    call,
    fail,
    open_existing,
    print_json,
    print_table,
)

models_app = typer.Typer(help="ML models: search, model cards, files and tensors, diffs.",
                         no_args_is_help=True)
Ref = Annotated[str, typer.Argument(help="REPO:TAG or REPO@DIGEST of a model")]


def _service(data_dir: Any, database: Any, storage: Any, config: Any) -> Any:
    return open_existing(Target(data_dir, database, storage, config).settings()).models


def _count(value: float | None) -> str:
    from ..models.params import format_count

    return format_count(value)


@models_app.command("search")
def search(
    query: Annotated[str, typer.Argument(
        help="terms KEY OP VALUE, all must hold: ops = != > >= < <= ~ (substring); keys are "
             "fields (name family version architecture params precision quantization format "
             "license kind repository run base dataset) or metric names, e.g. "
             "'family=llama params>=7B quantization~q4 accuracy>0.9'")] = "",
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List the indexed models that match the query (exit 2 when it does not parse)."""
    from ..auth.identity import CLI
    from ..models.query import QueryInvalid

    service = _service(data_dir, database, storage, config)
    try:
        found = service.search(query, CLI)
    except QueryInvalid as exc:
        fail(exc.message, 2)
    if json_output:
        print_json({"models": found})
        return
    print_table(["REPOSITORY", "DIGEST", "KIND", "NAME", "FAMILY", "PARAMS", "QUANT", "FORMAT",
                 "METRICS"],
                [[m["repository"], m["digest"][:19], m["kind"], m["name"], m["family"],
                  _count(m["params"]), m["quantization"], m["format"],
                  " ".join(f"{k}={v:g}" for k, v in sorted(m["metrics"].items()))]
                 for m in found], empty="no models match")


@models_app.command("show")
def show(
    reference: Ref, json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """The model card: fields, metrics, files and lineage (base, runs, fine-tunes)."""
    from ..auth.identity import CLI

    card = call(_service(data_dir, database, storage, config).card, reference, CLI)
    if json_output:
        print_json(card)
        return
    echo = typer.echo
    echo(f"{card['repository']}@{card['digest']}  ({card['kind']}"
         f"{', tags ' + ' '.join(card['tags']) if card['tags'] else ''})")
    for label, key in (("name", "name"), ("family", "family"), ("version", "version"),
                       ("architecture", "architecture"), ("params", "params_text"),
                       ("precision", "precision"), ("quantization", "quantization"),
                       ("format", "format"), ("license", "license"),
                       ("dataset", "dataset_digest"), ("parse error", "parse_error")):
        if card.get(key):
            echo(f"  {label + ':':<14}{card[key]}")
    if card["metrics"]:
        echo("  metrics:      " + " ".join(f"{k}={v:g}" for k, v in
                                           sorted(card["metrics"].items())))
    lineage = card["lineage"]
    if lineage["base"]:
        base = lineage["base"]
        known = ", ".join(f"{m['repository']}:{t}" for m in base["models"] for t in
                          (m["tags"] or [m["digest"][:19]]))
        echo(f"  fine-tuned from: {base['name'] or ''} {base['digest'] or ''}"
             f"{' (' + known + ')' if known else ''}".rstrip())
    for run in lineage["runs"]:
        echo(f"  training run: {run['id'] or ''} {run['url'] or ''}".rstrip())
    for child in lineage["fine_tunes"]:
        echo(f"  fine-tuned into: {child['repository']}@{child['digest']}"
             f"{' (' + ' '.join(child['tags']) + ')' if child['tags'] else ''}")
    echo(f"  files ({len(card['files'])}):")
    for f in card["files"]:
        echo(f"    {f['path']}  {f['size']} bytes  {f['media_type']}")


@models_app.command("files")
def files(
    reference: Ref,
    tensors: Annotated[bool, typer.Option("--tensors", help="list each file's tensors too")]
    = False,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every file with its layer and byte offset (and, with --tensors, each tensor's)."""
    from ..auth.identity import CLI

    listed = call(_service(data_dir, database, storage, config).files, reference, CLI, tensors)
    if json_output:
        print_json(listed)
        return
    rows = []
    for f in listed["files"]:
        rows.append([f["path"], f["size"], f["layer_digest"][:19],
                     "" if f["layer_offset"] is None else f["layer_offset"], f["media_type"]])
        for t in f.get("tensors", []):
            rows.append([f"  {t['name']}", t["length"], t["dtype"],
                         t["offset"], "x".join(map(str, t["shape"])) or "scalar"])
    print_table(["PATH", "SIZE", "LAYER / DTYPE", "OFFSET", "MEDIA TYPE / SHAPE"], rows,
                empty="no files")


@models_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="the model before (REPO:TAG or REPO@DIGEST)")],
    b: Annotated[str, typer.Argument(help="the model after")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Files added, removed and changed; tensors added, removed and changed."""
    from ..auth.identity import CLI

    d = call(_service(data_dir, database, storage, config).diff, a, b, CLI)
    if json_output:
        print_json(d)
        return
    echo = typer.echo
    for label in ("added", "removed", "changed"):
        for path in d["files"][label]:
            echo(f"file {label}: {path}")
    for label in ("added", "removed"):
        for name in d["tensors"][label]:
            echo(f"tensor {label}: {name}")
    for t in d["tensors"]["changed"]:
        why = (f"{t['from']} -> {t['to']}" if t["reason"] == "spec"
               else f"bytes of {t['file']} differ")
        echo(f"tensor changed: {t['name']} ({why})")
    echo(f"{len(d['files']['unchanged'])} files and {d['tensors']['unchanged']} tensors "
         "unchanged")
