"""``jobsync ops``: run everything locally, and the operator's commands over a running system."""

from __future__ import annotations

import click

from services.operator.run import cli as run_command


@click.group()
def cli() -> None:
    """Operator commands: run, status, drift (resync, dlq and closures live with their services)."""


cli.add_command(run_command, "run")
