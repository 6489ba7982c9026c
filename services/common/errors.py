"""One root exception for the project; library errors are re-raised from it with ``from exc``."""


class JobSyncError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigurationError(JobSyncError):
    """A setting is missing or wrong; the message names the environment variable."""


class DecodeError(JobSyncError):
    """Bytes that are not a valid event of a known schema version."""


class PublishError(JobSyncError):
    """Kafka did not acknowledge a message."""


class QueueFullError(PublishError):
    """The local producer queue is full: back-pressure, try again later."""


class InvalidJobError(JobSyncError):
    """A Trio job object that lacks or garbles a field we rely on.

    ``field`` names the offending field so an HTTP view or a log line can say which.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
