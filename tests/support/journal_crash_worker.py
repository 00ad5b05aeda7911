"""Helper process for the journal and single-flight tests: Generate then Poll Result through the
real node functions, loading the pack the way ComfyUI does. The tests SIGKILL it mid-wait or
mid-submit, or run two at once, then look at the journal and the emulator's charge counter.

Usage: python tests/support/journal_crash_worker.py PROMPT SEED [--sync] [--go FILE] [--no-poll]
[--host NAME --lease S] [--batch N]
(connection settings come from the env: WAVESPEED_API_KEY, WAVESPEED_BASE_URL,
WAVESPEED_JOURNAL_DIR, WAVESPEED_JOURNAL_URL). ``--go FILE``: print "ready" once loaded, then wait for FILE to exist before
submitting, so two workers can submit at the same moment. ``--host``: claim as a worker on another
machine would (that host name, a lease of ``--lease`` seconds), so only the lease tells it is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.pack_loader import PACK_NAME, call, load_pack  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    load_pack()
    if args.host:  # as a worker on another machine would claim: its host, its lease length
        singleflight = importlib.import_module(f"{PACK_NAME}.wavespeed.journal.singleflight")
        singleflight.HOST = args.host
        singleflight.LEASE_S = args.lease
    if args.go:
        print("ready", flush=True)
        while not Path(args.go).exists():
            time.sleep(0.005)
    print("submitting", flush=True)
    if args.batch:  # a Batch node of that many variations (seed -1: every one a new paid task)
        images, _, ids, _ = await call("FluxKontextMaxBatch", args.prompt, args.batch, args.seed, 3.5, "1:1")
        print(f"batch {len(ids.split())} {'x'.join(str(n) for n in images.shape)}", flush=True)
        return
    task, rid = await call(
        "FluxKontextMaxGenerate",
        args.prompt,
        seed=args.seed,
        guidance_scale=3.5,
        aspect_ratio="1:1",
        sync_mode=args.sync,
    )
    print(f"submitted {rid} ${task.price_usd:.2f}", flush=True)
    if not args.no_poll:
        images, *_ = await call("WaveSpeedPollResult", 60, "pass through", task=task)
        print(f"done {rid} {'x'.join(str(n) for n in images.shape)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("prompt")
    parser.add_argument("seed", type=int)
    parser.add_argument("--sync", action="store_true")
    parser.add_argument("--go", default="")
    parser.add_argument("--no-poll", action="store_true")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--host", default="")
    parser.add_argument("--lease", type=float, default=30.0)
    asyncio.run(main(parser.parse_args()))
