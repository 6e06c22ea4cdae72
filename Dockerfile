# syntax=docker/dockerfile:1
# Pinned: the base image by its full version (add @sha256:<digest> once your registry can
# be asked for it), every Python dependency by version and hash (requirements.lock).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
# The dependencies first, in a layer of their own: a change to the code reuses it.
COPY requirements.lock /tmp/requirements.lock
RUN /venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
RUN /venv/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
# A numeric user and group (10001), so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app gateway \
    && mkdir -p /app /data && chown 10001:10001 /data
COPY --from=build /venv /venv
WORKDIR /app
COPY config ./config
COPY schema ./schema
USER 10001:10001
ENV PATH=/venv/bin:$PATH \
    GATEWAY_CONFIG=/app/config/gateway.yaml \
    GATEWAY_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["gateway"]
CMD ["run"]
