# The workfleet images, one target per component. Build from the repository root:
#   docker build --target worker -t workfleet/worker .
#   docker build --target operator -t workfleet/operator .
#   docker build --target producer -t workfleet/producer .
# PYTHON_IMAGE picks the base (an official slim Python image by default).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common/ common/
COPY worker/ worker/
COPY producer/ producer/
COPY operator/ operator/

# Each image gets only its component's extra: no other component's dependencies.
FROM source AS worker-build
RUN python -m venv /opt/workfleet && /opt/workfleet/bin/pip install --no-cache-dir ".[worker]"

FROM source AS operator-build
RUN python -m venv /opt/workfleet && /opt/workfleet/bin/pip install --no-cache-dir ".[operator]"

FROM source AS producer-build
RUN python -m venv /opt/workfleet && /opt/workfleet/bin/pip install --no-cache-dir ".[producer]"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/workfleet/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A numeric user, so that runAsNonRoot can verify it; the chart runs it read-only.
USER 10001:10001

# Exec-form entrypoints: SIGTERM reaches Python (a worker finishes the task in hand before exiting).
FROM runtime AS worker
COPY --from=worker-build /opt/workfleet /opt/workfleet
EXPOSE 9100
ENTRYPOINT ["workfleet-worker"]

FROM runtime AS operator
COPY --from=operator-build /opt/workfleet /opt/workfleet
EXPOSE 9200 8080
ENTRYPOINT ["workfleet-operator"]

FROM runtime AS producer
COPY --from=producer-build /opt/workfleet /opt/workfleet
ENTRYPOINT ["workfleet-produce"]
