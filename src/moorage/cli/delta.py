"""`moorage push` and `moorage pull`: Moorage's own client, delta by content-defined chunks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import Quiet, fail, progress_bar

Registry = Annotated[str, typer.Option("--registry", envvar="MOORAGE_REGISTRY",
                                       help="the registry's base URL")]
Username = Annotated[str | None, typer.Option("--username", "-u", envvar="MOORAGE_USERNAME")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="read the password (or token) from stdin")]
Insecure = Annotated[bool, typer.Option("--insecure", help="skip TLS certificate checks")]


def _reference(ref: str) -> tuple[str, str]:
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not repo:
        fail(f"{ref!r} is not REPO:TAG")
    return repo, tag


def _client(registry: str, username: str | None, password_stdin: bool, insecure: bool):  # type: ignore[no-untyped-def]
    from ..upstream.client import UpstreamClient
    from ..upstream.types import Basic

    credentials = None
    if username:
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
        credentials = Basic(username, password)
    return UpstreamClient(registry, credentials, insecure=insecure, user_agent="moorage-cli")


def _show(update, tally) -> None:  # type: ignore[no-untyped-def]
    update("sent", tally.sent, tally.total)
    update("skipped", tally.skipped, tally.total)


def _with_progress(quiet: bool, client: Any, work: Callable[[Any, Any], Awaitable[Any]]
                   ) -> tuple[Any, Any]:
    """Run `work(client, on_progress)` under a progress bar: (its result, the last tally);
    a registry's refusal or a local error ends the command with `error: …`."""
    from ..upstream.types import UpstreamError

    async def main() -> tuple[Any, Any]:
        last: list[Any] = [None]
        with progress_bar(quiet) as update:
            def seen(tally: Any) -> None:
                last[0] = tally
                _show(update, tally)

            async with client:
                result = await work(client, seen)
        return result, last[0]

    try:
        return asyncio.run(main())
    except (UpstreamError, ValueError, OSError) as exc:
        fail(str(exc))


def push(
    source: Annotated[Path, typer.Argument(help="a model directory or one file")],
    ref: Annotated[str, typer.Argument(help="REPO:TAG")],
    registry: Registry = "http://127.0.0.1:5000",
    username: Username = None,
    password_stdin: PasswordStdin = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=32,
                                          help="chunk batches in flight")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1 << 16, max=64 << 20,
                                            help="chunk bytes per request")] = 8 << 20,
    plain: Annotated[bool, typer.Option("--plain", help="plain OCI uploads even when the "
                                        "registry speaks the delta extension")] = False,
    insecure: Insecure = False,
    quiet: Quiet = False,
) -> None:
    """Push a directory as a ModelPack artifact, sending only the chunks the registry lacks."""
    from ..delta.push import push as run

    if not source.exists():
        fail(f"{source} does not exist")
    repo, tag = _reference(ref)

    digest, tally = _with_progress(
        quiet, _client(registry, username, password_stdin, insecure),
        lambda client, seen: run(client, source, repo, tag, parallel, batch_size, seen, not plain))
    sent = getattr(tally, "sent", 0)
    skipped = getattr(tally, "skipped", 0)
    typer.echo(f"pushed {repo}:{tag}@{digest} (sent {sent} bytes, skipped {skipped})")


def pull(
    ref: Annotated[str, typer.Argument(help="REPO:TAG or REPO@DIGEST")],
    target: Annotated[Path, typer.Argument(help="the directory to write the files to")],
    registry: Registry = "http://127.0.0.1:5000",
    username: Username = None,
    password_stdin: PasswordStdin = False,
    cache: Annotated[Path | None, typer.Option("--cache", help="the local chunk cache "
                                               "(default ~/.cache/moorage/chunks)")] = None,
    insecure: Insecure = False,
    quiet: Quiet = False,
) -> None:
    """Pull an artifact's files into a directory, fetching only chunks not cached locally."""
    from ..delta.pull import ChunkCache, default_cache
    from ..delta.pull import pull as run

    if "@" in ref:
        repo, _, reference = ref.partition("@")
    else:
        repo, reference = _reference(ref)
    target.mkdir(parents=True, exist_ok=True)
    chunks = ChunkCache(cache or default_cache())

    names, tally = _with_progress(
        quiet, _client(registry, username, password_stdin, insecure),
        lambda client, seen: run(client, repo, reference, target, chunks, seen))
    typer.echo(f"pulled {len(names)} files of {ref} into {target} (fetched "
               f"{getattr(tally, 'sent', 0)} bytes, from cache {getattr(tally, 'skipped', 0)})")
