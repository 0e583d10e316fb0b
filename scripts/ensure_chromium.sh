#!/usr/bin/env bash
# Make sure headless Chromium is available for the report browser tests (tests/report/) and
# print its path. Idempotent: an installed browser is reused.
#
#   bash scripts/ensure_chromium.sh          # prints /usr/bin/chromium
#
# Installs Debian's `chromium` package when /usr/bin/chromium (or $TRAINLAB_CHROMIUM) is
# missing; that needs root and the package registry. Without them it says so and exits 1,
# and the browser tests skip with that reason.
set -euo pipefail

log() { echo "ensure_chromium: $*" >&2; }

find_browser() {
  local candidate
  for candidate in "${TRAINLAB_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! BROWSER=$(find_browser); then
  if [ "$(id -u)" != 0 ]; then
    log "Chromium is not installed and this is not root: apt-get install chromium"
    exit 1
  fi
  log "installing Debian's chromium package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  BROWSER=$(find_browser) || { log "chromium installed but not found on disk"; exit 1; }
fi

# (Debian's launcher script prints a harmless shell warning on stderr: dropped)
VERSION=$("$BROWSER" --version 2>/dev/null) || { log "$BROWSER does not start"; exit 1; }
log "$VERSION"
echo "$BROWSER"
