"""``python -m services.localinfra up|down|status|install``: the local Kafka and FerretDB servers."""

from __future__ import annotations

import sys

import click

from services.localinfra.servers import InfraError, default_servers, ensure_ferretdb, ensure_kafka_jars


@click.group()
def cli() -> None:
    """Local Kafka (KRaft) and FerretDB servers for development and tests (no Docker needed)."""


@cli.command()
def install() -> None:
    """Fetch Kafka's jars and build FerretDB into the cache (done once per version)."""
    click.echo(f"kafka jars: {ensure_kafka_jars()}")
    click.echo(f"ferretdb:   {ensure_ferretdb()}")


@cli.command()
def up() -> None:
    """Start both servers (idempotent) and wait until each answers."""
    kafka, ferret = default_servers()
    try:
        took = kafka.start()
        click.echo(f"kafka    ready at {kafka.bootstrap} in {took:.1f}s (log {kafka.log_file})")
        took = ferret.start()
        click.echo(f"ferretdb ready at {ferret.uri} in {took:.1f}s (log {ferret.log_file})")
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"export JOBSYNC_KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap} JOBSYNC_MONGODB_URI={ferret.uri}")


@cli.command()
def down() -> None:
    """Stop both servers (idempotent); data stays under .local/ until `make clean`."""
    for server in default_servers():
        server.stop()
        click.echo(f"{server.name} stopped")


@cli.command()
def status() -> None:
    """Say whether each server runs and answers; exit 1 when one does not."""
    ok = True
    for server in default_servers():
        pid = server.pid()
        answers = server.probe() if pid else False
        ok &= answers
        state = "answering" if answers else ("running, not answering" if pid else "stopped")
        click.echo(f"{server.name:9} {state:24} port {server.port}  pid {pid or '-'}  log {server.log_file}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
