"""What every service shares: the event schema codec, Kafka wiring, settings, logging, metrics.

Nothing here connects to anything at import time.
"""
