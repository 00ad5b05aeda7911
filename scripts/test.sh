#!/usr/bin/env bash
# The project's test command: bootstrap, lint, format check, type check, pytest (args pass through), then
# the oldest supported ComfyUI's smoke.
#   ./scripts/test.sh                 everything: unit, emulator, real-ComfyUI e2e and browser (chromium
#                                     needed) on ComfyUI 0.33.0, then the load + workflows smoke
#                                     and the browser tests (-m "smoke or browser") on ComfyUI 0.3.75
#                                     with its own frontend 1.32.9, then a small browser set on the
#                                     newest frontend, 1.58.1, served by 0.33.0 (FRONTEND_1_58_SET)
#   ./scripts/test.sh -m "not e2e"    skip the real-ComfyUI tests (and the 0.3.75 smoke: args were given)
#   COMFYUI_DIR=/path/to/ComfyUI ./scripts/test.sh   the e2e tests on another ComfyUI release
#   ./scripts/test.sh --python 3.13 [pytest args]     the non-e2e suite (-m "not e2e") on another CPython
#                                     3.10-3.13 (a version, a command or a path), in its own venv
#                                     .venv-py3.13 built by bootstrap.sh --venv (no ComfyUI needed)
# Runs every step even if an earlier one fails; exits non-zero if any failed. Prints each step's time.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS
if [[ "${1:-}" == --python || "${1:-}" == --python=* ]]; then
  if [[ "$1" == --python ]]; then want="${2:?--python needs a version (3.13), a command or a path}"; shift 2
  else want="${1#*=}"; shift; fi
  [[ "$want" =~ ^3\.[0-9]+$ ]] && want="python$want"
  ver="$("$want" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || {
    echo "test.sh: --python $want does not run: give a version on PATH (3.12), a command or a path"; exit 2; }
  venv=".venv-py$ver"
  PYTHON="$want" bash scripts/bootstrap.sh --venv "$venv" --comfyui none || {
    echo "test.sh: bootstrap of $venv failed"; exit 1; }
  rc=0
  "$venv/bin/python" -m pytest -m "not e2e" "$@" || rc=$?
  echo "test.sh: Python $ver, non-e2e suite: exit $rc ($((SECONDS - T0)) s)"
  exit "$rc"
fi
# on frontend 1.58.1 (its comfy.org sign-in gate at its default): a template opened from Templates runs
# from the Run button, the price badges show and follow the widgets, the status lines are right after
# the run, a Batch shows its first image while later tasks wait
FRONTEND_1_58_SET=(
  tests/e2e/browser/test_browser.py -k "template_loads or price_badge or run_shows or no_script_errors or first_image"
  tests/e2e/browser/test_browser_batch.py::test_batch_node_shows_the_first_image_while_later_tasks_wait
)
oldest=0
if (($# == 0)) && [[ -z "${COMFYUI_DIR:-}" ]]; then oldest=1; fi
comfy=0.33.0
((oldest)) && comfy=all
step_bootstrap_t=$SECONDS
bash scripts/bootstrap.sh --comfyui "$comfy" || { echo "test.sh: bootstrap failed"; exit 1; }
echo "== bootstrap ok ($((SECONDS - step_bootstrap_t)) s)"

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
if (($#)); then
  step pytest .venv/bin/python -m pytest "$@"
else
  # The unit and emulator tests mostly wait (WaveSpeed's 2 s pace, real sockets): four workers on two
  # cores; the real-ComfyUI tests after them, one at a time (each starts its own ComfyUI and browser).
  step pytest-unit .venv/bin/python -m pytest -m "not e2e" -n "${WAVESPEED_TEST_WORKERS:-4}"
  step pytest-e2e .venv/bin/python -m pytest -m e2e
fi
if ((oldest)); then
  step pytest-comfyui-0.3.75 env COMFYUI_DIR="$REPO/.cache/comfyui/ComfyUI-0.3.75" \
    .venv/bin/python -m pytest -m "smoke or browser" tests/e2e
  step pytest-frontend-1.58.1 env COMFYUI_FRONTEND=1.58.1 .venv/bin/python -m pytest "${FRONTEND_1_58_SET[@]}"
fi

echo "test.sh: step times: ${times[*]}"
if ((${#failed[@]})); then
  echo "test.sh: FAILED: ${failed[*]} ($((SECONDS - T0)) s)"
  exit 1
fi
echo "test.sh: all passed ($((SECONDS - T0)) s)"
