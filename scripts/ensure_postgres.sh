#!/usr/bin/env bash
# Start a private PostgreSQL server for the search tests (trainlab tune --storage postgresql://…)
# and print its URL. Idempotent: a server already answering on the port is reused.
#
#   bash scripts/ensure_postgres.sh          # prints postgresql://trainlab:trainlab@127.0.0.1:PORT/trainlab
#
# Installs Debian's `postgresql` package if it is missing (needs root and the package
# registry). The cluster lives under $TRAINLAB_PG_DIR (default /tmp/trainlab-pg), owned by
# the `postgres` system user when run as root. The URL is also written to
# $TRAINLAB_PG_DIR/url, which tests/studies read.
set -euo pipefail

PG_DIR="${TRAINLAB_PG_DIR:-/tmp/trainlab-pg}"
PG_PORT="${TRAINLAB_PG_PORT:-55432}"
DB=trainlab
USER_NAME=trainlab
PASSWORD=trainlab
URL="postgresql://${USER_NAME}:${PASSWORD}@127.0.0.1:${PG_PORT}/${DB}"

log() { echo "ensure_postgres: $*" >&2; }

find_bin() {
  local name=$1 found
  found=$(command -v "$name" 2>/dev/null || true)
  if [ -z "$found" ]; then
    found=$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  echo "$found"
}

if [ -z "$(find_bin initdb)" ] || [ -z "$(find_bin pg_ctl)" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and this is not root: apt-get install postgresql"
    exit 1
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
PSQL=$(find_bin psql)
PG_ISREADY=$(find_bin pg_isready)

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ready() { "$PG_ISREADY" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

mkdir -p "$PG_DIR"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$PG_DIR" postgres
  chown postgres "$PG_DIR"
fi

if ! ready; then
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initialising a cluster in $PG_DIR/data"
    as_owner "$INITDB" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting the server on 127.0.0.1:$PG_PORT"
  as_owner "$PG_CTL" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200 -c fsync=off" \
    start >&2
fi

for _ in $(seq 1 60); do ready && break; sleep 0.5; done
ready || { log "server did not become ready; see $PG_DIR/server.log"; exit 1; }

psql_admin() { as_owner "$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'")" != 1 ]; then
  psql_admin -d postgres -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD' CREATEDB" >/dev/null
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$DB'")" != 1 ]; then
  psql_admin -d postgres -c "CREATE DATABASE $DB OWNER $USER_NAME" >/dev/null
fi

echo "$URL" > "$PG_DIR/url"
chmod 644 "$PG_DIR/url"
echo "$URL"
