"""`moorage scan show | run`: an image's scan report (status, vulnerabilities, secrets, model
findings), and scanning it again."""

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
    open_existing,
    print_json,
    print_table,
)

scan_app = typer.Typer(help="Scan reports of images: vulnerabilities, secrets, model files.",
                       no_args_is_help=True)
Reference = Annotated[str, typer.Argument(help="REPO:TAG or REPO@DIGEST")]


def _counts(report: dict[str, Any]) -> str:
    from ..scan.reports import severity_counts

    vulns = report["vulnerabilities"]
    by = ", ".join(f"{k} {v}" for k, v in severity_counts(vulns).items())
    return (f"{len(report['packages'])} packages, {len(vulns)} vulnerabilities"
            + (f" ({by})" if by else "") + f", {len(report['secrets'])} secrets, "
            f"{len(report['model_findings'])} model findings")


@scan_app.command("show")
def show(
    reference: Reference, json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Print the image's scan report (pending until its scan has run)."""
    from ..times import human

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    repository, digest = call(registry.scans.resolve, reference)
    report = call(registry.scans.show, repository, digest)
    if json_output:
        print_json(report)
        return
    status = report["status"]
    why = report.get("reason") or report.get("error")
    typer.echo(f"{repository}@{digest}: {status}" + (f" ({why})" if why else "")
               + (f", scanned {human(report['scanned_at'])}" if report["scanned_at"] else ""))
    if status != "done":
        return
    typer.echo(_counts(report))
    if report["vulnerabilities"]:
        print_table(["ID", "SEVERITY", "SCORE", "PACKAGE", "INSTALLED", "FIXED", "LAYER"],
                    [[v["id"], v["severity"] or "-", "-" if v["score"] is None else v["score"],
                      v["package"], v["installed"], v["fixed"] or "-", v["layer"][:19]]
                     for v in report["vulnerabilities"]])
    if report["secrets"]:
        print_table(["RULE", "PATH", "LINE", "LAYER", "FINGERPRINT"],
                    [[s["rule"], s["path"], s["line"], s["layer"][:19], s["fingerprint"]]
                     for s in report["secrets"]])
    if report["model_findings"]:
        print_table(["KIND", "PATH", "LAYER", "DETAIL"],
                    [[m["kind"], m["path"], m["layer"][:19], m["detail"]]
                     for m in report["model_findings"]])


@scan_app.command("run")
def run(
    reference: Reference,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Scan the image again (a job the server's workers or `moorage worker` run)."""
    registry = open_existing(Target(data_dir, database, storage, config).settings())
    repository, digest = call(registry.scans.rescan, reference)
    typer.echo(f"{repository}@{digest}: scan queued (pending)")
