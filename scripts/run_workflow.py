"""Run a shipped workflow in a real headless ComfyUI and copy the images it saves into an out dir.

    python scripts/run_workflow.py [workflow.json] [--out DIR]

With WAVESPEED_API_KEY set it talks to the real WaveSpeed API (this costs credits). Without it, the
bundled emulator runs in this process and ComfyUI is pointed at it, so the whole path (ComfyUI ->
pack -> HTTP API -> download -> SaveImage) runs offline with synthetic test-pattern images.
ComfyUI comes from .cache/comfyui/ComfyUI (scripts/bootstrap.sh), or from $COMFYUI_DIR if set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.comfy_harness import (  # noqa: E402  (needs the repo root on sys.path)
    ComfyNotInstalledError,
    ComfyServer,
    ComfyServerError,
    comfy_dir,
    run_workflow_file,
)

DEFAULT_WORKFLOW = REPO_ROOT / "example_workflows" / "flux_kontext_max_text_to_image.json"
EMULATOR_KEY = "emulator-key"


def _save_log(server: ComfyServer, out_dir: Path) -> None:
    """Keep ComfyUI's log next to the outputs: the server's temp dir is deleted on exit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / "comfyui.log"
    dest.write_text(server.log_text(), encoding="utf-8")
    print(f"  ComfyUI log saved to {dest}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse args, pick real API or emulator, run the workflow; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("workflow", nargs="?", default=str(DEFAULT_WORKFLOW), help="UI-format workflow JSON")
    parser.add_argument("--out", default="out", help="directory for the saved images (default: out/)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the prompt")
    parser.add_argument("--keep-server-dir", action="store_true", help="keep ComfyUI's temp base dir + log")
    args = parser.parse_args(argv)

    workflow = Path(args.workflow)
    if not workflow.is_file():
        print(f"error: workflow not found: {workflow}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)

    env: dict[str, str] = {}
    emulator = None
    if os.environ.get("WAVESPEED_API_KEY"):
        print("Using the real WaveSpeed API (key from WAVESPEED_API_KEY)")
    else:
        from emulator import Emulator

        emulator = Emulator(api_keys=(EMULATOR_KEY,), inference_s=2.0)
        base_url = emulator.start(port=0)
        env = {"WAVESPEED_BASE_URL": base_url, "WAVESPEED_API_KEY": EMULATOR_KEY}
        print(
            "No WAVESPEED_API_KEY set: running against the bundled local emulator "
            "(images are synthetic test patterns, no credits used)"
        )
        print(f"  emulator at {base_url}")

    try:
        print(f"Starting ComfyUI from {comfy_dir()} ...", flush=True)
        with ComfyServer(env=env, keep_dir=args.keep_server_dir) as server:
            print(f"  ComfyUI ready at {server.url} in {server.startup_s:.1f} s (log: {server.log_path})")
            print(f"Running {workflow} ...", flush=True)
            t0 = time.monotonic()
            try:
                result = run_workflow_file(server, workflow, timeout=args.timeout)
            except ValueError as exc:  # the workflow does not match the installed nodes
                print(f"error: {exc}", file=sys.stderr)
                return 1
            except (ComfyServerError, TimeoutError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                _save_log(server, out_dir)
                return 1
            if not result.ok:
                print(f"error: {result.status}: {result.error_line()}", file=sys.stderr)
                _save_log(server, out_dir)
                return 1
            out_dir.mkdir(parents=True, exist_ok=True)
            copied = []
            for src in result.images:
                dest = out_dir / src.name
                shutil.copyfile(src, dest)
                copied.append(dest)
            print(f"Done in {time.monotonic() - t0:.1f} s: {len(copied)} image(s)")
            for path in copied:
                print(f"  {path}  ({path.stat().st_size} bytes)")
            if not copied:
                print("error: the workflow finished but saved no images", file=sys.stderr)
                return 1
    except (ComfyNotInstalledError, ComfyServerError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
