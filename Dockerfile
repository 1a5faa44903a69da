# syntax=docker/dockerfile:1
# One small image for the participant registry and every node of a federation:
#   docker compose up --build      (docker-compose.yml: the pilot of examples/pilot/)
#   docker run --rm dsgo-gateway:pilot --help
#
# The build stage makes wheels of the gateway's dependencies, with a compiler at hand for
# any that comes only as source. The final stage installs those wheels into a clean slim
# image (bind-mounted from the build stage, so neither the tool-chain nor the wheel files
# stay behind) and adds the project's code and its data files. Configuration, data and
# keys are not baked in: they are mounted (see docker-compose.yml).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY connectors connectors
# the project's own wheel is set aside: the gateway finds vocab/ and policies/schema.json
# beside its package folders, so it runs from /app (PYTHONPATH) rather than site-packages
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[ifc]" \
    && rm /wheels/dsgo_gateway-*.whl

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/*.whl
# a fixed non-root user (uid 1000); /var/lib/dsgo (a node's audit log) is writable by any
# user, so the image also runs with another --user (say, the host user who owns keys/)
RUN groupadd --gid 1000 dsgo \
    && useradd --uid 1000 --gid dsgo --no-create-home --shell /usr/sbin/nologin dsgo \
    && install -d -m 1777 /var/lib/dsgo \
    && printf '#!/bin/sh\nexec python -m gateway.cli "$@"\n' > /usr/local/bin/dsgo \
    && chmod 755 /usr/local/bin/dsgo
WORKDIR /app
COPY gateway gateway
COPY connectors connectors
COPY vocab vocab
COPY policies/schema.json policies/schema.json
RUN python -m compileall -q gateway connectors
USER dsgo
ENTRYPOINT ["dsgo"]
CMD ["--help"]
