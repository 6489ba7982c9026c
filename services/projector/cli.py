"""``jobsync projector run | closures list|apply | dlq list|replay``."""

from __future__ import annotations

import asyncio
import signal

import click

from services.common.errors import JobSyncError


@click.group()
def cli() -> None:
    """The projector: jobs.events -> MongoDB view + jobs.state change feed; operator commands."""


def _settings():
    from services.common.logs import configure_logging
    from services.common.settings import KafkaSettings, LogSettings, MongoSettings, load
    from services.projector.settings import ProjectorSettings

    try:
        log_settings = load(LogSettings)
        configure_logging(log_settings.format, log_settings.level)
        return load(ProjectorSettings), load(KafkaSettings), load(MongoSettings)
    except JobSyncError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
def run() -> None:
    """Run the projector (settings from JOBSYNC_PROJECTOR_*, JOBSYNC_KAFKA_*, JOBSYNC_MONGODB_*, JOBSYNC_LOG_*)."""
    from services.common.metrics import new_registry
    from services.common.ops import start_ops_server
    from services.projector.metrics import ProjectorMetrics
    from services.projector.service import Projector

    settings, kafka, mongo = _settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        registry = new_registry()
        projector = Projector(settings, kafka, mongo, ProjectorMetrics(registry))
        runner = None
        if settings.ops_port:
            runner = await start_ops_server(registry, projector.readiness, settings.ops_host, settings.ops_port)
        try:
            await projector.run(stop)
        finally:
            if runner is not None:
                await runner.cleanup()

    asyncio.run(main())


@cli.group()
def closures() -> None:
    """Snapshot closures the mass-closure guard held back for review."""


@closures.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also show applied snapshots, not only pending ones.")
def closures_list(show_all: bool) -> None:
    """List snapshots whose inferred closures wait for an operator (and, with --all, the decided ones)."""
    from services.projector.operations import list_snapshots

    settings, _, mongo = _settings()
    try:
        records = asyncio.run(list_snapshots(settings, mongo, None if show_all else "pending"))
    except Exception as exc:
        raise click.ClickException(f"cannot read the snapshots: {exc}") from exc
    if not records:
        click.echo("no pending snapshot closures" if not show_all else "no snapshot recorded")
        return
    for r in records:
        shown = ", ".join(str(n) for n in r["candidates"][:10]) + (" ..." if len(r["candidates"]) > 10 else "")
        click.echo(f"{r['snapshot_id']}  partition {r['partition']}  {r['status']}  started {r['started_at']}  "
                   f"candidates {r['candidate_count']} of {r['open_jobs']} open  closed {r['closed']}  "
                   f"reason: {r['reason']}" + (f"  jobs: {shown}" if shown else ""))


@closures.command("apply")
@click.argument("snapshot_id")
def closures_apply(snapshot_id: str) -> None:
    """Apply SNAPSHOT_ID's held-back closures (jobs seen since the snapshot began stay open)."""
    from services.projector.operations import apply_snapshot

    settings, kafka, mongo = _settings()
    try:
        report = asyncio.run(apply_snapshot(snapshot_id, settings, kafka, mongo))
    except JobSyncError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"snapshot {report.snapshot_id}: closed {report.closed} of {report.candidates} held-back jobs "
               f"(partitions {', '.join(map(str, report.partitions))}); the others were seen since")


@cli.group()
def dlq() -> None:
    """Dead letters on jobs.dlq: list them, replay chosen ones after a fix."""


def _select(origin: str | None, coords: tuple[str, ...], replay_all: bool):
    wanted = set(coords)

    def keep(record) -> bool:
        if origin and record.letter.origin != origin:
            return False
        return replay_all or not wanted or record.coords in wanted

    return keep


@dlq.command("list")
@click.option("--origin", help="Only records dead-lettered by this service (ingress, poller, projector).")
def dlq_list(origin: str | None) -> None:
    """Show every DLQ record: its DLQ coordinates (PARTITION:OFFSET), origin, reason, where it came from."""
    from services.projector.operations import OperationError, describe_time, read_dlq

    _, kafka, _ = _settings()
    try:
        records = read_dlq(kafka, keep=_select(origin, (), True))
    except OperationError as exc:
        raise click.ClickException(str(exc)) from exc
    if not records:
        click.echo("the DLQ is empty")
    for r in records:
        letter = r.letter
        source = f"{letter.original_topic}:{letter.original_partition}:{letter.original_offset}"
        click.echo(f"{r.coords}  {letter.origin or '?'}  {describe_time(letter.failed_at)}  from {source}  "
                   f"key {(r.key or b'').decode(errors='replace')}  reason: {letter.reason}")


@dlq.command("replay")
@click.argument("coords", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every record (with --origin: every one of it).")
@click.option("--origin", help="Only records dead-lettered by this service.")
def dlq_replay(coords: tuple[str, ...], replay_all: bool, origin: str | None) -> None:
    """Re-publish the DLQ records at COORDS (PARTITION:OFFSET, as `dlq list` shows) to their original topic."""
    from services.projector.operations import OperationError, read_dlq, replay_dlq

    if not coords and not replay_all:
        raise click.UsageError("name records as PARTITION:OFFSET (see `jobsync projector dlq list`) or pass --all")
    _, kafka, _ = _settings()
    try:
        records = read_dlq(kafka, keep=_select(origin, coords, replay_all))
    except OperationError as exc:
        raise click.ClickException(str(exc)) from exc
    missing = set(coords) - {r.coords for r in records}
    if missing and not replay_all:
        raise click.ClickException(f"no DLQ record at {', '.join(sorted(missing))}: see `jobsync projector dlq list`")
    for record, where in asyncio.run(replay_dlq(kafka, records)):
        click.echo(f"{record.coords} -> {where}")
