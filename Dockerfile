# syntax=docker/dockerfile:1
# One image for every process of the product (SPEC §2, §7): the `refunds` console script runs
# `api` (default), `worker`, `migrate` and `sandbox stripe|wechatpay`. docker-compose.yml picks
# the command per service.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every dependency ships manylinux wheels (amd64 and arm64): no compiler needed.
COPY . .
RUN python -m venv /opt/refunds \
    && /opt/refunds/bin/pip install .

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
# Fail the build, not the deployment, when the installed package misses a module: import what
# every subcommand imports, from outside the source tree, and check the migrations shipped.
WORKDIR /
RUN refunds --help > /dev/null \
    && python -c "import worker, api.main, refunds.cli.sandbox, refunds.db.migrate, \
refunds.runtime.temporal_client, refunds.sandboxes.stripe_sandbox, refunds.sandboxes.wechatpay_sandbox" \
    && python -c "import refunds.db.migrate as m, sys; sys.exit(not (m.MIGRATIONS / 'env.py').is_file())"
USER refunds
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
CMD ["refunds", "api"]
