"""The poller's errors, all under the project's JobSyncError root."""

from __future__ import annotations

from services.common.errors import ConfigurationError, JobSyncError


class TrioError(JobSyncError):
    """A Trio API call did not give us what we need."""


class TrioAuthError(TrioError, ConfigurationError):
    """Trio refused our API key (401/403): retrying cannot help; an operator must fix the setting."""


class TrioUnavailableError(TrioError):
    """Retries or the sync's time budget ran out on connect errors, timeouts, 429 or 5xx."""


class TrioRequestError(TrioError):
    """Trio answered a 4xx other than 401/403/429: the request itself is wrong, retrying cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class MalformedResponseError(TrioError):
    """Trio answered 2xx with a body we cannot read; ``body`` keeps it for the dead-letter record."""

    def __init__(self, message: str, body: bytes) -> None:
        super().__init__(message)
        self.body = body


class SyncFailedError(JobSyncError):
    """A sync stopped without advancing the cursor or publishing a marker; the message says why."""


class NotLeaderError(JobSyncError):
    """This instance is the standby: only the elected poller syncs."""
