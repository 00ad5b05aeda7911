#!/usr/bin/env bash
# Install the JSONata engine ComfyUI frontend 1.49.6 evaluates price badges with (its bundle holds
# jsonata@2.2.1) into .cache/jsonata, from the lockfile in scripts/jsonata/, for
# tests/nodes/paid/test_badge_properties.py. Idempotent: does nothing when that exact version is in place.
#   bash scripts/jsonata_engine.sh [DIR]      (default DIR: .cache/jsonata)
# Needs node and npm (any node >= 18); exits non-zero, saying what is missing, otherwise.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$REPO/.cache/jsonata}"
SPEC="$REPO/scripts/jsonata"
want="$(sed -n 's/.*"jsonata": "\([0-9.]*\)".*/\1/p' "$SPEC/package.json" | head -1)"
have="$(sed -n 's/^  "version": "\([0-9.]*\)".*/\1/p' "$DIR/node_modules/jsonata/package.json" 2>/dev/null || true)"
if [[ "$have" == "$want" ]] && cmp -s "$SPEC/package-lock.json" "$DIR/package-lock.json"; then
  echo "jsonata_engine: jsonata $have in $DIR"
  exit 0
fi
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "jsonata_engine: $tool is missing: install Node.js 18+ with npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  }
done
mkdir -p "$DIR"
cp "$SPEC/package.json" "$SPEC/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)  # (npm ci ignores --prefix for the lockfile)
echo "jsonata_engine: installed jsonata $want in $DIR"
