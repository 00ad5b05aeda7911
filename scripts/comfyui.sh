#!/usr/bin/env bash
# Start the demo's ComfyUI by hand (browser at http://127.0.0.1:8188) with this pack and the torchvision
# CPU shim, against the bundled emulator (no WAVESPEED_API_KEY) or the real API. Ctrl-C stops it.
#   ./scripts/comfyui.sh [--port N] [--emulator]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
for arg in "$@"; do
  if [[ "$arg" == -h || "$arg" == --help ]]; then exec "${PYTHON:-python3}" scripts/serve_comfyui.py --help; fi
done
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/serve_comfyui.py "$@"
