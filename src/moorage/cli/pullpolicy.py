"""`moorage policy set|show`: a namespace's admission policy at pull."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import Config, Database, DataDir, JsonFlag, Storage, Target, call, fail, print_json

policy_app = typer.Typer(help="Admission policy at pull, per namespace.", no_args_is_help=True)


def _print(policy: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(policy)
        return
    on = [name.replace("_", "-") for name in ("require_signature", "require_provenance",
                                              "deny_secrets",
                                              "deny_unsafe_models", "deny_unscanned", "dry_run")
          if policy[name]]
    if policy.get("builder"):
        on.append(f"builder {policy['builder']}")
    if policy["deny_severity"]:
        on.append(f"deny-severity {policy['deny_severity']}")
    typer.echo(f"pull policy of {policy['namespace']} (version {policy['version']}): "
               f"{', '.join(on) or 'none'}")
    for e in policy["exceptions"]:
        typer.echo(f"  exception {e['id']} until {e['until']}: {e['reason']}")


@policy_app.command("set")
def policy_set(
    namespace: str,
    require_signature: Annotated[bool, typer.Option(
        "--require-signature", help="a signature verified by a trusted key")] = False,
    require_provenance: Annotated[bool, typer.Option(
        "--require-provenance",
        help="an SLSA provenance attestation (v0.2 or v1) verified by a trusted key")] = False,
    builder: Annotated[str | None, typer.Option(
        "--builder", help="with --require-provenance: a glob the provenance's builder.id "
                          "must match")] = None,
    deny_severity: Annotated[str | None, typer.Option(
        "--deny-severity", help="deny vulnerabilities at or above: critical|high|medium|low")
    ] = None,
    deny_secrets: Annotated[bool, typer.Option("--deny-secrets", help="deny found secrets")
                            ] = False,
    deny_unsafe_models: Annotated[bool, typer.Option(
        "--deny-unsafe-models", help="deny dangerous pickle imports and invalid model headers")
    ] = False,
    deny_unscanned: Annotated[bool, typer.Option(
        "--deny-unscanned", help="deny manifests whose scan is not done")] = False,
    exception: Annotated[list[str] | None, typer.Option(
        "--exception", help="a vulnerability id or alias --deny-severity lets through")] = None,
    until: Annotated[list[str] | None, typer.Option(
        "--until", help="last day (YYYY-MM-DD) of the exception before it")] = None,
    reason: Annotated[list[str] | None, typer.Option(
        "--reason", help="why the exception before it is granted")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="allow every pull, but log and audit what would be denied")] = False,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Set NAMESPACE's whole pull policy (a rule not given is off)."""
    from ..auth.identity import CLI
    from .common import open_existing

    ids, untils, reasons = exception or [], until or [], reason or []
    if not len(ids) == len(untils) == len(reasons):
        fail("give each --exception its own --until and --reason", 2)
    policy = {"require_signature": require_signature,
              "require_provenance": require_provenance, "builder": builder,
              "deny_severity": deny_severity,
              "deny_secrets": deny_secrets, "deny_unsafe_models": deny_unsafe_models,
              "deny_unscanned": deny_unscanned, "dry_run": dry_run,
              "exceptions": [{"id": i, "until": u, "reason": r}
                             for i, u, r in zip(ids, untils, reasons, strict=True)]}
    registry = open_existing(Target(data_dir, database, storage, config).settings())
    _print(call(registry.pull_policies.set, CLI, namespace, policy), json_output)


@policy_app.command("show")
def policy_show(
    namespace: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Show NAMESPACE's pull policy."""
    from ..auth.identity import CLI
    from .common import open_existing

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    _print(call(registry.pull_policies.show, CLI, namespace), json_output)
