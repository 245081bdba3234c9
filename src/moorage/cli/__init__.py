"""The `moorage` command line: thin command modules (parse → service → print)."""

from __future__ import annotations

import typer

from .. import __version__
from . import (
    accounts,
    cache,
    db,
    dedup,
    delta,
    events,
    insights,
    jobs,
    lifecycle,
    models,
    oidc,
    operations,
    pullpolicy,
    ratelimit,
    replication,
    sbom,
    scan,
    serve,
    settings,
    signing,
    vulndb,
    webhooks,
)

app = typer.Typer(help="Moorage: an OCI registry for machine-learning teams.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Moorage: an OCI container registry for models and their environments."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


app.command()(serve.serve)
app.add_typer(db.db_app, name="db")
app.add_typer(accounts.user_app, name="user")
app.add_typer(accounts.robot_app, name="robot")
app.add_typer(accounts.namespace_app, name="namespace")
app.add_typer(oidc.oidc_app, name="oidc")
app.command()(accounts.audit)
app.add_typer(events.events_app, name="events")
app.command()(lifecycle.gc)
app.add_typer(lifecycle.retention_app, name="retention")
app.add_typer(lifecycle.immutability_app, name="immutability")
app.add_typer(lifecycle.quota_app, name="quota")
app.add_typer(lifecycle.tag_app, name="tag")
app.add_typer(jobs.jobs_app, name="jobs")
app.command()(jobs.worker)
app.command("settings")(settings.settings)
app.command()(operations.check)
app.command()(operations.backup)
app.command()(operations.restore)
app.add_typer(operations.secrets_app, name="secrets")
app.add_typer(webhooks.webhook_app, name="webhook")
app.add_typer(vulndb.vulndb_app, name="vulndb")
app.add_typer(sbom.sbom_app, name="sbom")
app.add_typer(models.models_app, name="models")
app.add_typer(dedup.dedup_app, name="dedup")
app.command()(delta.push)
app.command()(delta.pull)
app.add_typer(scan.scan_app, name="scan")
app.command("insights")(insights.insights)
app.add_typer(signing.trust_app, name="trust")
app.add_typer(pullpolicy.policy_app, name="policy")
app.command()(signing.verify)
app.command()(signing.provenance)
app.add_typer(cache.upstream_app, name="upstream")
app.add_typer(cache.cache_app, name="cache")
app.add_typer(replication.replication_app, name="replication")
app.add_typer(ratelimit.ratelimit_app, name="ratelimit")

__all__ = ["app"]
