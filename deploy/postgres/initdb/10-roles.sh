#!/bin/sh
# Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d):
# a `refunds` role owning the `refunds` database, and a `temporal` role allowed to create the
# `temporal` and `temporal_visibility` databases (the compose `temporal-schema` step creates and
# migrates them with temporal-sql-tool, deploy/temporal/setup-schema.sh).
# Passwords come from the environment of the postgres service (see docker-compose.yml).
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
: "${TEMPORAL_DB_PASSWORD:?set TEMPORAL_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v app_pw="$APP_DB_PASSWORD" -v temporal_pw="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE refunds LOGIN PASSWORD :'app_pw';
CREATE DATABASE refunds OWNER refunds;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_pw';
SQL
