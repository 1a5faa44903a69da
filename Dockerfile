# One image for the participant registry and every node of a federation, made of the
# project's wheel as `pip install` makes it (the README's "Run it in docker"):
#   docker compose up --build --wait   (docker-compose.yml: the pilot of examples/pilot/)
#   docker run --rm dsgo-gateway:pilot --help
#
# The build stage turns the sources into the project's wheel, with the same backend and
# files as `python -m build` (vocab/, policies/schema.json and examples/pilot/ go in as
# package data). The final stage installs that wheel with its dependencies (binary wheels,
# no compiler) into a clean copy of the base, so the image holds no source tree and no
# tool-chain, and dsgo finds its data through importlib.resources as any install does.
# Configuration, data and keys are not baked in: they are mounted (docker-compose.yml).
# No image but the base is needed: where python:3.11-slim cannot be pulled, pass a local
# one (--build-arg PYTHON_IMAGE=..., as .ci/run does with a debootstrap-made base).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY connectors connectors
COPY vocab vocab
COPY policies policies
COPY examples/pilot examples/pilot
RUN python -m pip wheel --no-deps --wheel-dir /dist .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /dist /tmp/dist
RUN python -m pip install "$(ls /tmp/dist/dsgo_gateway-*.whl)[ifc]" \
    && rm -rf /tmp/dist
# a fixed non-root user, uid 1000, owns /app/keys: a named volume mounted there starts
# owned by it, so the keys the compose `keys` service makes are the nodes' to read;
# /var/lib/dsgo (a node's audit log) is writable by any user
RUN groupadd --gid 1000 dsgo \
    && useradd --uid 1000 --gid dsgo --no-create-home --shell /usr/sbin/nologin dsgo \
    && install -d -m 1777 /var/lib/dsgo \
    && install -d -o dsgo -g dsgo -m 0755 /app /app/keys
WORKDIR /app
USER dsgo
ENTRYPOINT ["dsgo"]
CMD ["--help"]
