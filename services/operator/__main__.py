"""``python -m services.operator``: the operator commands (``run`` is what ``make run`` calls)."""

from services.operator.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m services.operator")
