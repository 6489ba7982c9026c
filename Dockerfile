# syntax=docker/dockerfile:1
# One image for every trio-jobsync service; the command picks the service:
#   docker run IMAGE ingress | poller run | projector run | simulator
# Build from the repository root:  docker build -t trio-jobsync .
# No secret is baked in: the Trio API key and the ingress path secret come from the environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the pinned dependencies in a virtualenv (no compiler needed: every dependency ships wheels) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# Only the two files that decide the dependencies, so this layer is reused until they change.
COPY pyproject.toml constraints.txt ./
# The runtime dependencies are pyproject's [project.dependencies], each pinned by constraints.txt.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --require-virtualenv -c constraints.txt -r requirements.txt \
    && pip check

# ---- runtime: the virtualenv, the code and the Avro schemas, run as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="trio-jobsync" \
      org.opencontainers.image.description="Keeps a staffing agency's job list in sync with the Trio VMS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOBSYNC_LOG_FORMAT=json
RUN groupadd --system --gid 10001 jobsync \
    && useradd --system --uid 10001 --gid jobsync --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin jobsync
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# services/common/codec.py reads <repo root>/schemas, so the image keeps the repository layout under /app.
COPY schemas/ /app/schemas/
COPY services/ /app/services/
# `jobsync` on PATH too, so operators can `docker compose exec projector jobsync ...`.
COPY deploy/docker/jobsync /usr/local/bin/jobsync
USER 10001:10001
ENTRYPOINT ["python", "-m", "services.cli"]
CMD ["--help"]
