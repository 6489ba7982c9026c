"""``jobsync ops``: run everything locally, and the operator's commands over a running system."""

from __future__ import annotations

import click

from services.operator.run import cli as run_command


@click.group()
def cli() -> None:
    """Operator commands: run, status, drift (resync, dlq and closures live with their services)."""


cli.add_command(run_command, "run")


@cli.command("config-table")
@click.option("--write", is_flag=True, help="Rewrite the table in README.md instead of printing it.")
def config_table(write: bool) -> None:
    """The configuration table of every service, from the settings classes."""
    from services.operator.configdoc import table, write_readme

    if write:
        click.echo("README.md updated" if write_readme() else "README.md already up to date")
    else:
        click.echo(table(), nl=False)
