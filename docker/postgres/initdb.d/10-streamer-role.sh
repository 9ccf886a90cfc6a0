#!/bin/sh
# The streamer's own role, which may read and add rows but not change the schema or delete
# anything; the owner (POSTGRES_USER) runs the migrations (the migrate service).
# The postgres image runs this once, when it creates its volume. For a volume made before:
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-streamer-role.sh
# Safe to run again: it creates what is missing and sets the password from the environment.
set -e
if [ "${DROPSTREAM_DB_USER:-}" = "${POSTGRES_USER:-}" ]; then
  echo "DROPSTREAM_DB_USER must name a role of its own, not POSTGRES_USER ($POSTGRES_USER)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:?}" --dbname "${POSTGRES_DB:?}" \
  -v role="${DROPSTREAM_DB_USER:?set DROPSTREAM_DB_USER}" -v password="${DROPSTREAM_DB_PASSWORD:?set DROPSTREAM_DB_PASSWORD}" \
  -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
-- PostgreSQL 15 and later already keep PUBLIC from creating objects in public; said here all the same.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"role";
-- The tables and sequences the owner creates from now on (the migrations) and those it has.
-- UPDATE: a batch completes its ingest_batches row (default privileges cannot name one table).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO :"role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE ON SEQUENCES TO :"role";
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO :"role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"role";
SQL
