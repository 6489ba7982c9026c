"""Real Kafka and MongoDB-wire servers as local processes, for machines without Docker.

- Apache Kafka 4.x (single-node KRaft): jars fetched from Maven Central by ``deploy/local/kafka/pom.xml``.
- FerretDB 1.24 on SQLite: built from its Go module.

Downloads are cached outside the clone, keyed by version (``$JOBSYNC_CACHE_DIR``, default
``~/.cache/trio-jobsync``); data lives under the git-ignored ``.local/`` folder of the clone.
A development and test tool, never part of a deployment.
"""
