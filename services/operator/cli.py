"""``jobsync ops``: run everything locally, and the operator's commands over a running system."""

from __future__ import annotations

import click

from services.operator.commands import drift, status
from services.operator.run import cli as run_command
from services.poller import cli as poller_cli
from services.projector import cli as projector_cli


@click.group()
def cli() -> None:
    """Operator commands: run, status, resync, drift, dlq, closures."""


cli.add_command(run_command, "run")
cli.add_command(status, "status")
cli.add_command(drift, "drift")


# The same commands as the services' own, gathered for operators.
cli.add_command(poller_cli.resync, "resync")
cli.add_command(projector_cli.dlq, "dlq")
cli.add_command(projector_cli.closures, "closures")

@cli.command("config-table")
@click.option("--write", is_flag=True, help="Rewrite the table in README.md instead of printing it.")
def config_table(write: bool) -> None:
    """The configuration table of every service, from the settings classes."""
    from services.operator.configdoc import table, write_readme

    if write:
        click.echo("README.md updated" if write_readme() else "README.md already up to date")
    else:
        click.echo(table(), nl=False)
