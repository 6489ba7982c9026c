"""``python -m services.poller``: run the poller (same as ``jobsync poller run``)."""

from services.poller.cli import run

if __name__ == "__main__":
    run()
