"""``jobsync``: one console script for every service and operator command.

Each service folder owns a click group in its ``cli.py``; they are loaded lazily, so ``jobsync --help``
imports no service and nothing connects at import time.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# subcommand -> module whose ``cli`` attribute is a click command or group
COMMANDS: dict[str, tuple[str, str]] = {
    "ingress": ("services.ingress.cli", "Run the webhook ingress (aiohttp)."),
    "poller": ("services.poller.cli", "Run the Trio API poller, or start a resync."),
    "projector": ("services.projector.cli", "Run the projector; DLQ and closure operator commands."),
    "simulator": ("services.simulator.cli", "Run the Trio VMS simulator (development tool)."),
    "ops": ("services.operator.cli", "Operator commands: status, resync, drift, dlq, closures."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if _exists(module))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        try:
            return importlib.import_module(module).cli
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the service's package is not there at all
        return False


@click.group(cls=LazyGroup)
def main() -> None:
    """trio-jobsync: keep an agency's job list in sync with the Trio VMS."""


if __name__ == "__main__":
    main()
