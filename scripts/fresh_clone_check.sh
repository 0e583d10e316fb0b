#!/usr/bin/env bash
# The fresh-clone check (issue 13): does the committed `main` build and pass its tests
# from nothing, exactly as a newcomer would run it?
#
#   bash scripts/fresh_clone_check.sh                          # clone main, `make test` (~10 min)
#   FRESH_CLONE_TARGET=install bash scripts/fresh_clone_check.sh   # stop after clone + venv
#
# Clones branch $FRESH_CLONE_BRANCH (default main) of the repository this script lives in
# (or $FRESH_CLONE_SOURCE) into a temporary directory and runs `make $FRESH_CLONE_TARGET`
# (default test) there: a new .venv inside the clone, installed under the clone's
# constraints.txt; the outer .venv, VIRTUAL_ENV and PYTHONPATH are kept out of it. Only
# committed work is checked: uncommitted changes in the working tree are not in the clone.
# Ends with the pytest summary line and the elapsed time, and exits with make's status.
# On success the temporary directory is removed; on failure it is kept (the path and its
# make.log are printed) for a look.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="${FRESH_CLONE_SOURCE:-$ROOT}"
BRANCH="${FRESH_CLONE_BRANCH:-main}"
TARGET="${FRESH_CLONE_TARGET:-test}"

log() { echo "fresh-clone: $*"; }

START=$(date +%s)
TMP="$(mktemp -d "${TMPDIR:-/tmp}/trainlab-fresh.XXXXXX")"
STATUS=1  # anything that ends the script before make has finished counts as a failure

finish() {
  local elapsed=$(( $(date +%s) - START ))
  local MAKE_LOG=
  if [ -f "$TMP/make.log" ]; then
    MAKE_LOG=1
    local summary
    summary=$(grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$TMP/make.log" | tail -n 1)
    log "pytest: ${summary:-no pytest summary line (make $TARGET)}"
  fi
  log "elapsed: $(( elapsed / 60 ))m $(( elapsed % 60 ))s; exit status $STATUS"
  if [ "$STATUS" -eq 0 ]; then
    rm -rf "$TMP"
  else
    log "kept $TMP for inspection${MAKE_LOG:+ (log: $TMP/make.log)}"
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# Nothing from the outer environment: no activated venv, no outer .venv on PATH.
outer_bins=":$ROOT/.venv/bin:${VIRTUAL_ENV:+$VIRTUAL_ENV/bin:}"
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | while read -r dir; do
  case "$outer_bins" in *":$dir:"*) ;; *) printf '%s:' "$dir" ;; esac
done)
export PATH="${PATH%:}"
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME
PYTHON="${FRESH_CLONE_PYTHON:-python3}"

log "cloning $SOURCE (branch $BRANCH) into $TMP/trainlab"
if ! git clone --quiet --branch "$BRANCH" --single-branch "$SOURCE" "$TMP/trainlab"; then
  exit 1
fi
log "commit $(git -C "$TMP/trainlab" log -1 --format='%h %s')"
if [ -e "$TMP/trainlab/.venv" ]; then
  log "the clone already has a .venv: refusing to reuse it"
  exit 1
fi

log "make $TARGET (python: $(command -v "$PYTHON"))"
make -C "$TMP/trainlab" PYTHON="$PYTHON" VENV=.venv "$TARGET" 2>&1 | tee "$TMP/make.log"
STATUS=${PIPESTATUS[0]}
exit "$STATUS"
