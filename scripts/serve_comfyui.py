"""Start the demo's ComfyUI by hand, for the browser: what ./scripts/comfyui.sh runs.

`python main.py` alone dies on this CPU setup (`operator torchvision::nms does not exist`): the
server needs the torchvision CPU shim in custom_nodes, which ComfyServer adds, with this pack. The
server keeps running until Ctrl-C; its files (input, output, log) stay in --dir.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.comfy_harness import ComfyServer, comfy_dir, comfy_version  # noqa: E402

EMULATOR_KEY = "emulator-key"


def main(argv: list[str] | None = None) -> int:
    """Start the emulator (without WAVESPEED_API_KEY) and ComfyUI, wait for Ctrl-C, stop both."""
    parser = argparse.ArgumentParser(
        prog="./scripts/comfyui.sh",
        description="Start ComfyUI with this pack (and the CPU shim) on 127.0.0.1 until Ctrl-C. Without "
        "WAVESPEED_API_KEY the nodes talk to the bundled emulator (free); with it, to the real API "
        "(about $0.08 per image). COMFYUI_DIR picks another ComfyUI tree.",
    )
    parser.add_argument("--port", type=int, default=8188, help="port on 127.0.0.1 (default 8188)")
    parser.add_argument(
        "--emulator", action="store_true", help="use the emulator even if WAVESPEED_API_KEY is set"
    )
    args = parser.parse_args(argv)

    env: dict[str, str] = {}
    emulator = None
    if os.environ.get("WAVESPEED_API_KEY") and not args.emulator:
        print("Nodes use the real WaveSpeed API: each image costs about $0.08")
    else:
        from emulator import Emulator

        emulator = Emulator(api_keys=(EMULATOR_KEY,), inference_s=2.0)
        base_url = emulator.start(port=0)
        env = {"WAVESPEED_BASE_URL": base_url, "WAVESPEED_API_KEY": EMULATOR_KEY}
        print(f"Nodes use the bundled emulator at {base_url} (synthetic images, no credits)")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = comfy_dir()
    print(f"Starting ComfyUI {comfy_version(where) or '?'} from {where} ...", flush=True)
    server = ComfyServer(env=env, port=args.port, keep_dir=True, startup_timeout=180)
    try:
        server.start()
        print(f"ComfyUI is at {server.url} (files and comfyui.log in {server.base_dir}); Ctrl-C stops it")
        while not stop.wait(1.0):
            if not server.is_running():
                print(f"ComfyUI exited; log: {server.log_path}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
