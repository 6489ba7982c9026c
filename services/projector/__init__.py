"""The projector: jobs.events -> MongoDB view ``jobs`` + the ``jobs.state`` change feed.

Pure core: ``document`` (the view document's shape), ``rules`` (projection rules 1-7 and the batch fold),
``closures`` (closure inference and the mass-closure guard), ``feed`` (change-feed records).
I/O edges: ``view`` (MongoDB), ``service`` (Kafka consumer loop), ``dlq`` (dead letters), ``cli``.
Nothing connects at import time.
"""
