"""Start, watch and stop the services as child processes (used by ``make run`` and the e2e tests).

Each child runs ``python -m services.<name> ...`` with its settings in the environment, writes its
log to a file, and is "ready" when an HTTP URL of its own answers 200.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the process that started it dies, so a killed test run or a killed
    ``make run`` leaves no service behind. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ProcessError(RuntimeError):
    """A child did not start or did not become ready; the message names its log file."""


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    env: dict[str, str]
    log_file: Path
    ready_url: str | None = None
    ready_timeout: float = 60.0
    ready_headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        if self.running:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        if self.ready_url is None:
            return
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ProcessError(f"{self.name} exited ({self.exit_code}) before it was ready; see {self.log_file}:\n"
                                   + self.tail())
            try:
                if httpx.get(self.ready_url, headers=self.ready_headers, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ProcessError(f"{self.name} not ready at {self.ready_url} within {self.ready_timeout:.0f}s; "
                           f"see {self.log_file}:\n" + self.tail())

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crashed machine."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log yet)"
