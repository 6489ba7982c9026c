"""``python -m services.ingress``: the same as ``jobsync ingress``."""

from services.ingress.cli import cli

if __name__ == "__main__":
    cli(prog_name="python -m services.ingress")
