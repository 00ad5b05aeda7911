#!/usr/bin/env bash
# One command demo: build the environment (idempotent), then run a workflow in a real headless ComfyUI.
#   ./scripts/demo.sh [workflow.json] [--out DIR]
# Without WAVESPEED_API_KEY it uses the bundled emulator (no credits); with it, the real API.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/run_workflow.py "$@"
