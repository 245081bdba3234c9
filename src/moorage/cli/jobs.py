"""`moorage jobs list | enqueue | retry | cancel` and `moorage worker`: the job queue."""

from __future__ import annotations

import json
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

jobs_app = typer.Typer(help="The background job queue: list, enqueue, retry, cancel.",
                       no_args_is_help=True)


def _queue(target: Target) -> Any:
    return open_existing(target.settings()).jobs


@jobs_app.command("list")
def list_jobs(
    state: Annotated[str | None, typer.Option(
        help="only jobs in these states (comma-separated): queued, running, done, failed, "
             "cancelled")] = None,
    kind: Annotated[str | None, typer.Option(help="only jobs of this kind")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 100,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List jobs, newest first."""
    from ..times import human

    jobs = call(_queue(Target(data_dir, database, storage, config)).list, state, kind, limit)
    if json_output:
        print_json({"jobs": [j.to_dict() for j in jobs]})
        return
    print_table(
        ["ID", "KIND", "KEY", "STATE", "ATTEMPTS", "RUN AT", "FINISHED", "LAST ERROR"],
        [[j.id, j.kind, j.unique_key or "", j.state, f"{j.attempts}/{j.max_attempts}",
          human(j.run_at), human(j.finished_at, "-"), (j.last_error or "")[:80]]
         for j in jobs],
        empty="no jobs",
    )


@jobs_app.command("enqueue")
def enqueue(
    kind: Annotated[str, typer.Argument(help="gc, retention, uploads.expire, quota.recount, outbox.prune")],
    payload: Annotated[str | None, typer.Option(help="JSON object of the job's options, e.g. "
                                                     "'{\"grace_period\": 0}'")] = None,
    key: Annotated[str | None, typer.Option(
        help="unique key: no second job of this kind and key while one is queued or running"
    )] = None,
    delay: Annotated[float, typer.Option(help="seconds before it may run")] = 0.0,
    max_attempts: Annotated[int | None, typer.Option(
        help="attempts before it fails [default: MOORAGE_JOB_MAX_ATTEMPTS or 5]")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Queue a job for the server's workers or `moorage worker`."""
    try:
        body = json.loads(payload) if payload else {}
    except json.JSONDecodeError as exc:
        fail(f"--payload is not JSON: {exc}", 2)
    if not isinstance(body, dict):
        fail("--payload must be a JSON object", 2)
    queue = _queue(Target(data_dir, database, storage, config))
    job, created = call(queue.enqueue, kind, body, key, delay, max_attempts)
    if json_output:
        print_json({**job.to_dict(), "created": created})
    elif created:
        typer.echo(f"queued job {job.id} ({job.kind})")
    else:
        typer.echo(f"job {job.id} ({job.kind}, key {job.unique_key!r}) is already {job.state}")


@jobs_app.command("retry")
def retry(
    job_id: Annotated[int, typer.Argument(help="ID of a failed or cancelled job")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Queue a failed or cancelled job again, now, with fresh attempts."""
    job = call(_queue(Target(data_dir, database, storage, config)).retry, job_id)
    if json_output:
        print_json(job.to_dict())
    else:
        typer.echo(f"job {job.id} ({job.kind}) queued again")


@jobs_app.command("cancel")
def cancel(
    job_id: Annotated[int, typer.Argument(help="ID of a queued job")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Cancel a queued job (a running one finishes; a cancelled schedule stops recurring)."""
    job = call(_queue(Target(data_dir, database, storage, config)).cancel, job_id)
    if json_output:
        print_json(job.to_dict())
    else:
        typer.echo(f"job {job.id} ({job.kind}) cancelled")


def worker(
    concurrency: Annotated[int | None, typer.Option(
        help="jobs run at once [env MOORAGE_JOB_CONCURRENCY; default 1]")] = None,
    metrics_listen: Annotated[str | None, typer.Option(
        help="serve the job metrics (runs, failures, durations, queue gauges) at "
             "http://HOST:PORT/metrics [env MOORAGE_WORKER_METRICS_LISTEN; default off]",
        metavar="HOST:PORT")] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Run background jobs only (no HTTP), beside or instead of the servers' own runners;
    SIGTERM finishes the running jobs or gives them back to the queue."""
    import asyncio
    import signal

    from ..config import split_address
    from ..logs import setup_logging

    settings = Target(data_dir, database, storage, config).settings(
        job_concurrency=concurrency, worker_metrics_listen=metrics_listen)
    setup_logging(settings.log_level, settings.log_format)
    registry = open_existing(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.to_thread(registry.ensure_schedules)
        runner = registry.job_runner()
        runner.start()
        metrics = None
        if settings.worker_metrics_listen:
            host, port = split_address(settings.worker_metrics_listen, "--metrics-listen")
            metrics = await registry.serve_metrics(host, port)
            typer.echo(f"moorage worker {runner.name}: metrics at "
                       f"http://{settings.worker_metrics_listen}/metrics", err=True)
        typer.echo(f"moorage worker {runner.name}: running up to {runner.concurrency} "
                   f"job{'s' if runner.concurrency != 1 else ''} at once", err=True)
        await stop.wait()
        await runner.stop(settings.shutdown_timeout)
        if metrics is not None:
            await metrics.cleanup()

    asyncio.run(main())
    registry.close()
