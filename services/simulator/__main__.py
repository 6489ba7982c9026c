"""``python -m services.simulator``: the same command as ``jobsync simulator``."""

from services.simulator.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m services.simulator")
