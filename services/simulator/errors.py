"""The simulator's errors: each names what was wrong, so a test failure or a 4xx body explains itself."""

from __future__ import annotations

from services.common.errors import ConfigurationError, JobSyncError


class SimulatorError(JobSyncError):
    """Root of the simulator's own errors."""


class UnknownJobError(SimulatorError, LookupError):
    """No job has that Number."""

    def __init__(self, number: int) -> None:
        super().__init__(f"no job with Number {number}")
        self.number = number


class InvalidChangeError(SimulatorError, ValueError):
    """A change the simulated Trio would not make (e.g. holding a closed job, or setting ModifiedDateUtc)."""


class InvalidRequestError(SimulatorError, ValueError):
    """A request parameter or body the simulated API rejects with 400; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownRegistrationError(SimulatorError, LookupError):
    """No webhook registration has that Id."""

    def __init__(self, registration_id: int) -> None:
        super().__init__(f"no webhook registration with Id {registration_id}")
        self.registration_id = registration_id


class FaultConfigError(ConfigurationError, ValueError):
    """A fault setting that is unknown or out of range; the message names it and the accepted values."""
