"""Operator tooling: ``make run`` (everything up locally), status, drift, and the commands that
delegate to the services (resync, dlq, closures)."""
