#!/usr/bin/env bash
# The project's test command: bootstrap, lint, format check, type check, pytest (args pass through), then
# the oldest supported ComfyUI's smoke.
#   ./scripts/test.sh                 everything: unit, emulator, real-ComfyUI e2e and browser (chromium
#                                     needed) on ComfyUI 0.33.0, then the load + workflows smoke
#                                     and the browser tests (-m "smoke or browser") on ComfyUI 0.3.75
#                                     with its own frontend 1.32.9
#   ./scripts/test.sh -m "not e2e"    skip the real-ComfyUI tests (and the 0.3.75 smoke: args were given)
#   COMFYUI_DIR=/path/to/ComfyUI ./scripts/test.sh   the e2e tests on another ComfyUI release
# Runs every step even if an earlier one fails; exits non-zero if any failed. Prints each step's time.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS
oldest=0
if (($# == 0)) && [[ -z "${COMFYUI_DIR:-}" ]]; then oldest=1; fi
comfy=0.33.0
((oldest)) && comfy=all
step_bootstrap_t=$SECONDS
bash scripts/bootstrap.sh --comfyui "$comfy" || { echo "test.sh: bootstrap failed"; exit 1; }
echo "== bootstrap ok ($((SECONDS - step_bootstrap_t)) s)"
bash scripts/jsonata_engine.sh || echo "test.sh: no JSONata engine: tests/test_badge_properties.py skips (fails under CI)"

failed=()
times=("bootstrap $((SECONDS - step_bootstrap_t))s")
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
  times+=("$name $((SECONDS - t))s")
}

step ruff .venv/bin/ruff check .
step format .venv/bin/ruff format --check .
step mypy bash scripts/typecheck.sh
step pytest .venv/bin/python -m pytest "$@"
if ((oldest)); then
  step pytest-comfyui-0.3.75 env COMFYUI_DIR="$REPO/.cache/comfyui/ComfyUI-0.3.75" \
    .venv/bin/python -m pytest -m "smoke or browser" tests/e2e
fi

echo "test.sh: step times: ${times[*]}"
if ((${#failed[@]})); then
  echo "test.sh: FAILED: ${failed[*]} ($((SECONDS - T0)) s)"
  exit 1
fi
echo "test.sh: all passed ($((SECONDS - T0)) s)"
