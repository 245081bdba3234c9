"""`moorage oidc add | list | show | remove`: trusted OIDC issuers and their rules (server
admins), so CI jobs log in with their ID token (`docker login -u oidc --password-stdin`)."""

from __future__ import annotations

from pathlib import Path
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

oidc_app = typer.Typer(help="OIDC workload identity: CI jobs exchange ID tokens for tokens.",
                       no_args_is_help=True)


def _service(target: Target) -> Any:
    return open_existing(target.settings()).oidc


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            fail(f"{what} takes KEY=VALUE, got {item!r}", 2)
        out[key] = value
    return out


@oidc_app.command("add")
def add(
    issuer: Annotated[str, typer.Argument(help="the issuer URL, exactly as its tokens' `iss`")],
    namespace: Annotated[list[str], typer.Option(
        "--namespace", "-n", help="NS=pull,push granted when the claims match (repeatable)")],
    claim: Annotated[list[str] | None, typer.Option(
        "--claim", help="KEY=GLOB the token's claim must match (repeatable, all must match; "
        "`*` within a / segment, `**` across)")] = None,
    audience: Annotated[str | None, typer.Option(
        help="`aud` the tokens must contain (needed for a new issuer)")] = None,
    jwks_file: Annotated[Path | None, typer.Option(
        help="the issuer's JWKS as a file (stored: for air-gapped sites)")] = None,
    jwks_url: Annotated[str | None, typer.Option(
        help="https:// URL of the issuer's JWKS (fetched by the server, cached)")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Add a rule to ISSUER (trusting it, when new): tokens whose claims match get -n's rights."""
    from ..auth.identity import CLI

    if jwks_file is not None and jwks_url is not None:
        fail("give --jwks-file or --jwks-url, not both", 2)
    jwks = None
    if jwks_file is not None:
        try:
            jwks = jwks_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {jwks_file}: {exc}", 2)
    permissions = {ns: [a for a in actions.split(",") if a]
                   for ns, actions in _pairs(namespace, "--namespace").items()}
    result = call(_service(Target(data_dir, database, storage, config)).add_rule, CLI, issuer,
                  _pairs(claim or [], "--claim"), permissions, audience, jwks, jwks_url)
    if json_output:
        print_json(result)
        return
    typer.echo(f"rule {result['rule']} of {result['issuer']} (audience {result['audience']}): "
               f"{_claims(next(r for r in result['rules'] if r['id'] == result['rule']))}")


def _claims(rule: dict[str, Any]) -> str:
    claims = " ".join(f"{k}={v}" for k, v in sorted(rule["claims"].items()))
    grants = " ".join(f"{ns}={','.join(a)}" for ns, a in sorted(rule["permissions"].items()))
    return f"{claims} -> {grants}"


def _keys(issuer: dict[str, Any]) -> str:
    if issuer["jwks_url"]:
        return issuer["jwks_url"]
    return f"file ({issuer['jwks_keys']} keys)"


@oidc_app.command("list")
def list_issuers(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every trusted issuer and its rules."""
    from ..auth.identity import CLI

    issuers = call(_service(Target(data_dir, database, storage, config)).list_issuers, CLI)
    if json_output:
        print_json({"issuers": issuers})
        return
    print_table(["ISSUER", "AUDIENCE", "KEYS", "RULE", "CLAIMS -> PERMISSIONS"],
                [[i["issuer"], i["audience"], _keys(i), r["id"], _claims(r)]
                 for i in issuers for r in i["rules"] or [{"id": "", "claims": {},
                                                          "permissions": {}}]],
                empty="no OIDC issuers")


@oidc_app.command("show")
def show(
    issuer: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """One issuer: audience, key source and rules."""
    from ..auth.identity import CLI
    from ..times import human

    row = call(_service(Target(data_dir, database, storage, config)).get_issuer, CLI, issuer)
    if json_output:
        print_json(row)
        return
    typer.echo(f"issuer:   {row['issuer']}\naudience: {row['audience']}\nkeys:     {_keys(row)}"
               f"\nadded:    {human(row['created_at'], '-')} by {row['created_by'] or '-'}")
    print_table(["RULE", "CLAIMS -> PERMISSIONS", "ADDED"],
                [[r["id"], _claims(r), human(r["created_at"], "-")] for r in row["rules"]],
                empty="no rules: no token of this issuer is accepted")


@oidc_app.command("remove")
def remove(
    issuer: str,
    rule: Annotated[int | None, typer.Option(help="remove only this rule of the issuer")] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Stop trusting ISSUER (with all its rules), or remove one --rule of it."""
    from ..auth.identity import CLI

    service = _service(Target(data_dir, database, storage, config))
    if rule is None:
        call(service.remove_issuer, CLI, issuer)
        typer.echo(f"removed OIDC issuer {issuer} and its rules")
        return
    row = call(service.get_issuer, CLI, issuer)
    if not any(r["id"] == rule for r in row["rules"]):
        fail(f"issuer {issuer} has no rule {rule}")
    call(service.remove_rule, CLI, rule)
    typer.echo(f"removed rule {rule} of {issuer}")
