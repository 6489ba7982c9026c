"""``python -m services.projector``: run the projector (same as ``jobsync projector run``)."""

from services.projector.cli import run

if __name__ == "__main__":
    run()
