"""Command line: `python -m emulator --port 8765` runs the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .imagegen import OUTPUT_FORMATS
from .limits import TIERS
from .server import Emulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator", description="Local WaveSpeed v3 API emulator.")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0 = pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--inference-s", type=float, default=2.0, help="seconds each task spends processing")
    p.add_argument("--queue-s", type=float, default=0.0, help="seconds each task stays 'created'")
    p.add_argument("--sync-timeout-s", type=float, default=90.0, help="sync-mode wait before code 5004")
    p.add_argument("--balance", type=float, default=100.0, help="starting account balance in USD")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted Bearer key (repeatable; default: emulator-key)",
    )
    p.add_argument("--output-format", choices=sorted(OUTPUT_FORMATS), default="jpeg")
    p.add_argument(
        "--tier",
        choices=sorted(TIERS),
        default="none",
        help="account level: its per-minute submit limit (429 beyond) and concurrency limit (tasks "
        "beyond it stay 'created'); WAVESPEED_API.md section 8",
    )
    p.add_argument(
        "--minute-s", type=float, default=60.0, help="length of the rate window (scaled-down minute)"
    )
    p.add_argument(
        "--inference-max-s",
        type=float,
        default=None,
        help="draw each task's inference time uniformly from [--inference-s, this]",
    )
    p.add_argument("--retry-after", action="store_true", help="send Retry-After with 429s (the API does not)")
    p.add_argument("--seed", type=int, default=None, help="seed for the random inference times")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start, print one line with the URL (never the key), serve until a signal, stop cleanly."""
    args = _parser().parse_args(argv)
    keys = tuple(args.api_keys or ["emulator-key"])
    emu = Emulator(
        api_keys=keys,
        inference_s=args.inference_s,
        queue_s=args.queue_s,
        sync_timeout_s=args.sync_timeout_s,
        output_format=args.output_format,
        balance=args.balance,
        host=args.host,
        tier=args.tier,
        minute_s=args.minute_s,
        inference_max_s=args.inference_max_s,
        retry_after_on_429=args.retry_after,
        seed=args.seed,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    base_url = emu.start(port=args.port)
    print(f"WaveSpeed emulator listening on {base_url} (api key: {len(keys)} accepted)", flush=True)
    if args.tier != "none":
        tier = TIERS[args.tier]
        print(
            f"account tier {tier.name}: {tier.per_minute} tasks per {args.minute_s:g} s, "
            f"{tier.concurrency} at once",
            flush=True,
        )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
