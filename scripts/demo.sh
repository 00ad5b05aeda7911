#!/usr/bin/env bash
# One command demo: build the environment (idempotent), then run a workflow in a real headless ComfyUI.
#   ./scripts/demo.sh [workflow.json] [--out DIR]      (--help: usage, at once, before any install)
# Without WAVESPEED_API_KEY it uses the bundled emulator (no credits); with it, the real API (costs money).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Usage and a wrong workflow file are answered before the (first-run: minutes long) bootstrap: the
# checks in run_workflow.py use the standard library only, so any python3 can run them.
py="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] && py=.venv/bin/python
for arg in "$@"; do
  if [[ "$arg" == -h || "$arg" == --help ]]; then exec "$py" scripts/run_workflow.py --help; fi
done
"$py" scripts/run_workflow.py --check-only "$@"
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/run_workflow.py "$@"
