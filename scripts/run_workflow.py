"""What ./scripts/demo.sh runs: a workflow in a real headless ComfyUI, its saved images copied to --out.

Everything before ComfyUI starts (usage, reading and checking the workflow file) uses the standard
library only, so `demo.sh --help` and a wrong file answer at once, before any install or start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

if TYPE_CHECKING:
    from scripts.comfy_harness import PromptResult

DEFAULT_WORKFLOW = REPO_ROOT / "example_workflows" / "Text to image - Kontext [max].json"
EMULATOR_KEY = "emulator-key"
PRICE_PER_IMAGE_USD = 0.08

USAGE = """\
usage: ./scripts/demo.sh [WORKFLOW.json] [--out DIR] [--timeout S] [--keep-server-dir]

Runs a workflow (default: "example_workflows/Text to image - Kontext [max].json") in a
headless ComfyUI with this pack loaded and copies the images it saves into DIR (default: out/), next to
ComfyUI's log (DIR/comfyui.log). The first run installs everything into .venv/ and .cache/
(4 to 6 minutes and 2.7 GB); later runs start in about 20 s.

environment:
  WAVESPEED_API_KEY  set: the real WaveSpeed API is used, and that COSTS MONEY:
                     about $0.08 per image, charged to your WaveSpeed account;
                     unset: the bundled local emulator (synthetic images, free, offline)
  COMFYUI_DIR        run this ComfyUI tree instead of .cache/comfyui/ComfyUI-0.33.0

options:
  WORKFLOW.json      a workflow saved by the ComfyUI frontend (UI format) or an API-format prompt
  --out DIR          where the images and comfyui.log go (default: out/)
  --timeout S        seconds to wait for the workflow (default: 600)
  --keep-server-dir  keep ComfyUI's temporary base directory after the run
  -h, --help         this text

To start the same ComfyUI by hand (browser UI, emulator or real API): ./scripts/comfyui.sh
"""


class WorkflowFileError(ValueError):
    """The workflow file cannot be run; the message is one line naming the file and why."""


def read_workflow(path: Path) -> tuple[dict[str, Any], bool]:
    """Read and shape-check a workflow file before anything starts: (data, is_ui_format).

    Raises WorkflowFileError naming the file when it is missing, not JSON, or not a workflow.
    """
    if not path.is_file():
        raise WorkflowFileError(f"{path}: no such file (give a workflow .json, e.g. {DEFAULT_WORKFLOW.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WorkflowFileError(f"{path}: not a workflow (not a UTF-8 text file)") from None
    except json.JSONDecodeError as exc:
        raise WorkflowFileError(
            f"{path}: not a workflow (not JSON: {exc.msg} at line {exc.lineno})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return data, True
    if (
        isinstance(data, dict)
        and data
        and all(isinstance(v, dict) and "class_type" in v for v in data.values())
    ):
        return data, False
    raise WorkflowFileError(
        f"{path}: not a workflow (JSON, but neither a saved UI workflow with 'nodes' nor an API prompt)"
    )


def failure_line(workflow: Path, result: PromptResult) -> str:
    """One line for a run that did not succeed: which workflow, what happened, where."""
    verb = {"rejected": "was rejected by ComfyUI", "interrupted": "was interrupted"}
    return f"{workflow.name} {verb.get(result.status, 'failed')}: {result.error_line()}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./scripts/demo.sh", usage=USAGE, add_help=False)
    parser.add_argument("workflow", nargs="?", default=str(DEFAULT_WORKFLOW))
    parser.add_argument("--out", default="out")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-server-dir", action="store_true")
    parser.add_argument("-h", "--help", action="store_true")
    # demo.sh's first pass, before the bootstrap: --help and a wrong file answer at once
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    return parser


def fail(message: str) -> int:
    """Print one `demo: error: ...` line and return the exit code 1."""
    print(f"demo: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Check the arguments and the workflow, pick real API or emulator, run; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.help:
        print(USAGE, end="")
        return 0
    workflow = Path(args.workflow)
    try:
        data, is_ui = read_workflow(workflow)
    except WorkflowFileError as exc:
        return fail(str(exc))
    if args.check_only:
        return 0
    out_dir = Path(args.out).resolve()
    log_path = out_dir / "comfyui.log"

    from scripts.comfy_harness import (
        ComfyNotInstalledError,
        ComfyServer,
        ComfyServerError,
        comfy_dir,
        comfy_version,
        run_prompt,
        ui_to_api,
    )

    env: dict[str, str] = {}
    emulator = None
    if os.environ.get("WAVESPEED_API_KEY"):
        print(
            "Using the real WaveSpeed API (key from WAVESPEED_API_KEY): this costs money, "
            f"about ${PRICE_PER_IMAGE_USD:.2f} per image"
        )
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
        where = comfy_dir()
        print(f"Starting ComfyUI {comfy_version(where) or '?'} from {where} ...", flush=True)
        with ComfyServer(env=env, keep_dir=args.keep_server_dir, log_path=log_path) as server:
            print(f"  ComfyUI ready at {server.url} in {server.startup_s:.1f} s (log: {log_path})")
            print(f"Running {workflow} ...", flush=True)
            t0 = time.monotonic()
            try:
                prompt = ui_to_api(data, server.object_info()) if is_ui else data
            except ValueError as exc:  # the workflow does not match the installed nodes
                return fail(f"{workflow}: does not match this ComfyUI's nodes: {exc}")
            result = run_prompt(server, prompt, timeout=args.timeout)
            if not result.ok:
                return fail(f"{failure_line(workflow, result)} (log: {log_path})")
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
                return fail(f"{workflow.name} finished but saved no images (log: {log_path})")
    except ComfyNotInstalledError as exc:
        return fail(str(exc))
    except (ComfyServerError, TimeoutError) as exc:
        return fail(f"{str(exc).splitlines()[0]} (log: {log_path})")
    finally:
        if emulator is not None:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
