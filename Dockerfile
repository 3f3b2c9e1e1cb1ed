# syntax=docker/dockerfile:1
# One image for every aeroflow role; the command picks it:
#   docker run IMAGE api | ingest | serve | worker --subscription ...
# Cloud Run runs `api` and `ingest` (infra/terraform/modules/cloud_run) and sets $PORT.

# python:3.11-slim (Debian), pinned by its multi-arch index digest. This digest is the one
# BuildKit resolved for the python:3.11-slim tag on 2025-06-11 (seen in a public build log);
# it was not re-resolved from this machine, which has no registry access. Refresh it with
#   docker buildx imagetools inspect python:3.11-slim
# and keep the digest pinned, the same in both stages (a bot such as Dependabot can propose
# updates).
FROM python:3.11-slim@sha256:74132ced0002947303bc75654c7d51d3818435fe1c0ec6e4d84f7ca4d0849878 AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency ships manylinux wheels, so no compiler is needed even here.
RUN python -m venv /opt/aeroflow
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/aeroflow/bin/pip install --no-cache-dir .

FROM python:3.11-slim@sha256:74132ced0002947303bc75654c7d51d3818435fe1c0ec6e4d84f7ca4d0849878 AS runtime
ENV PATH=/opt/aeroflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AEROFLOW_HOST=0.0.0.0 \
    PORT=8080
RUN groupadd --system --gid 10001 aeroflow \
    && useradd --system --uid 10001 --gid aeroflow --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin aeroflow \
    && install -d -o aeroflow -g aeroflow /app /app/data
# The virtualenv only: no sources, no build stage leftovers.
COPY --from=build /opt/aeroflow /opt/aeroflow
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Exec form: aeroflow is PID 1 and receives SIGTERM directly, so uvicorn drains in-flight
# requests (and the committer its batches) within Cloud Run's grace period.
ENTRYPOINT ["aeroflow"]
CMD ["serve", "--host", "0.0.0.0"]
