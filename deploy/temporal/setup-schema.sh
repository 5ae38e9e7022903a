#!/bin/sh
# Creates and migrates Temporal's two PostgreSQL databases, `temporal` and `temporal_visibility`,
# with the temporal-sql-tool of the temporalio/admin-tools image (the compose `temporal-schema`
# step, before the server starts). This is the schema setup Temporal documents for a self-hosted
# PostgreSQL deployment, in place of the deprecated temporalio/auto-setup image.
#
# Every step is idempotent: `create` accepts an existing database, `setup-schema -v 0.0` leaves
# a versioned schema alone, `update-schema` migrates to the schema of the admin-tools version.
# So the same step is the upgrade path: pin the server and admin-tools to a new release, and the
# next `docker compose up` migrates the schema before the new server starts.
#
# The connection comes from temporal-sql-tool's own environment variables:
# SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (see docker-compose.yml).
set -eu

: "${SQL_HOST:?set SQL_HOST}"
: "${SQL_USER:?set SQL_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD}"
SCHEMA_DIR=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

setup() {
    database=$1
    versioned=$2
    echo "temporal-schema: $database"
    temporal-sql-tool --db "$database" create
    temporal-sql-tool --db "$database" setup-schema -v 0.0
    temporal-sql-tool --db "$database" update-schema -d "$SCHEMA_DIR/$versioned/versioned"
}

setup temporal temporal
setup temporal_visibility visibility
echo "temporal-schema: done"
