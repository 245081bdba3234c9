"""`moorage trust add|list|remove`, `moorage verify` and `moorage provenance`: signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

trust_app = typer.Typer(help="Keys and root certificates each namespace trusts for signatures.",
                        no_args_is_help=True)


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}", 2)


@trust_app.command("add")
def trust_add(
    namespace: str,
    name: Annotated[str, typer.Option("--name", help="name of the entry in the namespace")],
    key: Annotated[Path | None, typer.Option(
        "--key", help="PEM public key (cosign.pub): ECDSA P-256/P-384, RSA >= 2048, Ed25519")
    ] = None,
    certificate_chain: Annotated[Path | None, typer.Option(
        "--certificate-chain", help="PEM root certificate(s) notation chains must lead to")
    ] = None,
    identity: Annotated[str | None, typer.Option(
        "--identity", help="keyless: the signer's certificate identity (email or URI)")] = None,
    issuer: Annotated[str | None, typer.Option(
        "--issuer", help="keyless: the OIDC issuer of that identity")] = None,
    trusted_root: Annotated[Path | None, typer.Option(
        "--trusted-root", help="keyless: the sigstore trusted_root.json (Fulcio CAs, log keys, "
                               "TSAs; without tlogs an RFC 3161 timestamp replaces the log)")
    ] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Trust a public key, an x509 root, or a keyless identity for signatures in NAMESPACE."""
    from ..auth.identity import CLI

    given = [key is not None, certificate_chain is not None,
             any(x is not None for x in (identity, issuer, trusted_root))]
    if sum(given) != 1:
        fail("give one of --key, --certificate-chain, or --identity with --issuer and "
             "--trusted-root", 2)
    key_pem, chain_pem, root = _read(key), _read(certificate_chain), _read(trusted_root)
    registry = open_existing(Target(data_dir, database, storage, config).settings())
    entry = call(registry.trust.add, CLI, namespace, name, key_pem, chain_pem, identity, issuer,
                 root)
    if json_output:
        print_json(entry)
        return
    who = f"{entry['identity']} from {entry['issuer']}, " if entry["identity"] else ""
    typer.echo(f"namespace {entry['namespace']} trusts {entry['name']} ({who}"
               f"{entry['algorithm']}, SHA-256 {entry['fingerprint']})")


@trust_app.command("list")
def trust_list(
    namespace: Annotated[str | None, typer.Argument(help="one namespace (default: all)")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List trust entries."""
    from ..auth.identity import CLI
    from ..times import human

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    entries = call(registry.trust.list, CLI, namespace)
    if json_output:
        print_json({"entries": entries})
        return
    print_table(["NAMESPACE", "NAME", "KIND", "ALGORITHM", "IDENTITY", "FINGERPRINT", "ADDED"],
                [[e["namespace"], e["name"], e["kind"], e["algorithm"],
                  f"{e['identity']} ({e['issuer']})" if e["identity"] else "-", e["fingerprint"],
                  human(e["created_at"], "-")] for e in entries],
                empty="no trust entries")


@trust_app.command("remove")
def trust_remove(
    namespace: str, name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Stop trusting an entry."""
    from ..auth.identity import CLI

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    call(registry.trust.remove, CLI, namespace, name)
    typer.echo(f"namespace {namespace} no longer trusts {name}")


def verify(
    reference: Annotated[str, typer.Argument(help="REPO:TAG or REPO@DIGEST")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Check an image's signatures against its namespace's trust; exit 1 unless one verifies."""
    from ..auth.identity import CLI

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    result = call(registry.signatures.verify, CLI, reference)
    if json_output:
        print_json(result.to_dict())
    else:
        typer.echo(result.summary())
        checks = [*result.signatures, *result.attestations]
        print_table(["KIND", "SIGNATURE", "FOUND AS", "RESULT", "TRUST ENTRY", "WHY"],
                    [[c.kind, c.manifest[:19], c.found_as, c.outcome, c.trust_entry or "-",
                      c.message] for c in checks])
    if not result.verified:
        raise typer.Exit(1)


def provenance(
    reference: Annotated[str, typer.Argument(help="REPO:TAG or REPO@DIGEST")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Show the builder, source, commit and build time of an image's verified SLSA provenance."""
    from ..auth.identity import CLI

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    result, found = call(registry.signatures.provenance, CLI, reference)
    if json_output:
        print_json({"repository": result.repository, "digest": result.digest,
                    "provenance": found})
    elif not found:
        unverified = [a for a in result.attestations if not a.verified]
        why = "; ".join(a.message for a in unverified) or "no attestations found"
        typer.echo(f"{result.repository}@{result.digest} has no verified SLSA provenance: {why}")
    else:
        for p in found:
            typer.echo(f"{result.repository}@{result.digest} (verified by {p['trust_entry']})")
            for label, k in (("builder", "builder"), ("source", "source"), ("commit", "commit"),
                             ("started", "started"), ("finished", "finished")):
                typer.echo(f"  {label:9} {p.get(k) or '-'}")
    if not found:
        raise typer.Exit(1)
