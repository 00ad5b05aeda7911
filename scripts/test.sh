#!/usr/bin/env bash
# The project's test command: bootstrap, lint, format check, type check, then pytest (args pass through).
#   ./scripts/test.sh                 everything (unit, emulator, real-ComfyUI e2e, browser if chromium exists)
#   ./scripts/test.sh -m "not e2e"    skip the real-ComfyUI tests
# Runs every step even if an earlier one fails; exits non-zero if any failed.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS
bash scripts/bootstrap.sh || { echo "test.sh: bootstrap failed"; exit 1; }

failed=()
step() {
  local name="$1"; shift
  local t=$SECONDS
  echo "== $name: $*"
  if "$@"; then
    echo "== $name ok ($((SECONDS - t)) s)"
  else
    echo "== $name FAILED ($((SECONDS - t)) s)"
    failed+=("$name")
  fi
}

step ruff .venv/bin/ruff check .
step format .venv/bin/ruff format --check .
step mypy bash scripts/typecheck.sh
step pytest .venv/bin/python -m pytest "$@"

if ((${#failed[@]})); then
  echo "test.sh: FAILED: ${failed[*]} ($((SECONDS - T0)) s)"
  exit 1
fi
echo "test.sh: all passed: ruff, format, mypy, pytest ($((SECONDS - T0)) s)"
