"""``jobsync poller run`` and ``jobsync poller resync``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import click

from services.common.errors import JobSyncError


@click.group()
def cli() -> None:
    """The Trio API poller: full and incremental syncs into Kafka."""


@cli.command()
def run() -> None:
    """Run the poller (settings from JOBSYNC_POLLER_*, JOBSYNC_KAFKA_*, JOBSYNC_LOG_*)."""
    from services.common.logs import configure_logging
    from services.common.settings import KafkaSettings, LogSettings, load
    from services.poller.service import Poller
    from services.poller.settings import PollerSettings

    try:
        log_settings = load(LogSettings)
        configure_logging(log_settings.format, log_settings.level)
        settings = load(PollerSettings)
        kafka = load(KafkaSettings)
        poller = Poller(settings, kafka)
    except JobSyncError as exc:
        raise click.ClickException(str(exc)) from exc

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await poller.run(stop)

    asyncio.run(main())


@cli.command()
@click.option("--url", default="http://127.0.0.1:8082", show_default=True, help="The active poller's ops/admin URL.")
@click.option(
    "--token", envvar="JOBSYNC_POLLER_ADMIN_TOKEN", help="Admin bearer token [env JOBSYNC_POLLER_ADMIN_TOKEN]."
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Show progress until the sync ends.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between progress reads.")
@click.option("--timeout", default=7200.0, show_default=True, help="Give up waiting after this many seconds.")
def resync(url: str, token: str | None, wait: bool, interval: float, timeout: float) -> None:
    """Start a full sync now on the running poller, and show its progress until it is done."""
    import httpx

    if not token:
        raise click.ClickException("no admin token: pass --token or set JOBSYNC_POLLER_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0) as http:
        try:
            answer = http.post("/admin/resync")
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the poller at {url}: {exc}") from exc
        if answer.status_code != 202:
            raise click.ClickException(f"resync refused (HTTP {answer.status_code}): {_error(answer)}")
        sync_id = answer.json()["sync_id"]
        click.echo(f"resync {sync_id} queued")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                reply = http.get(f"/admin/syncs/{sync_id}")
            except httpx.HTTPError as exc:
                raise click.ClickException(f"lost the poller at {url}: {exc}") from exc
            if reply.status_code != 200:
                raise click.ClickException(f"cannot read progress (HTTP {reply.status_code}): {_error(reply)}")
            progress = reply.json()
            line = (
                f"{progress['phase']:13} fetched={progress['fetched']} published={progress['published']} "
                f"markers={progress['markers']}"
            )
            if line != last:
                click.echo(line)
                last = line
            if progress.get("outcome"):
                if progress["outcome"] == "succeeded":
                    suspicious = (
                        " (marked suspicious: much smaller than the last snapshot)" if progress["suspicious"] else ""
                    )
                    click.echo(f"resync {sync_id} succeeded: {progress['published']} jobs{suspicious}")
                    return
                click.echo(f"resync {sync_id} {progress['outcome']}: {progress.get('error')}", err=True)
                sys.exit(1)
            time.sleep(interval)
        raise click.ClickException(f"resync {sync_id} still running after {timeout:.0f}s")


def _error(response: object) -> str:
    try:
        return str(response.json().get("error"))  # type: ignore[attr-defined]
    except Exception:
        return getattr(response, "text", "")[:200]


if __name__ == "__main__":
    cli(prog_name=os.path.basename(sys.argv[0]))
