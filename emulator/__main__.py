"""Command line: `python -m emulator --port 8765` runs the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import threading
from types import FrameType
from typing import Any

from .behaviour.imagegen import OUTPUT_FORMATS
from .behaviour.tiers import TIERS
from .routes.echo import ECHO_KEYS, ECHO_STYLES, HISTORY_ECHOES
from .server import KIND, Emulator


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
    p.add_argument("--tls-cert", metavar="PEM", help="serve https with this certificate (chain) file")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (with --tls-cert)")
    kind = p.add_argument_group(
        "how kind the emulator is (defaults: the least kind reading of the evidence, WAVESPEED_API.md 12-13)"
    )
    kind.add_argument("--kind", action="store_true", help="every switch below at its older, kinder value")
    kind.add_argument(
        "--history-echo", choices=HISTORY_ECHOES, help="request echo on history items (asked: include_inputs)"
    )
    kind.add_argument("--result-echo", choices=ECHO_KEYS, help="request echo on a task's /result (none)")
    kind.add_argument("--echo-style", choices=ECHO_STYLES, help="go: re-encoded, schema keys only (go)")
    kind.add_argument(
        "--history-lenient", action="store_true", help="page/page_size optional on the history call"
    )
    kind.add_argument(
        "--low-balance-status", type=int, choices=(400, 402, 403), help='"Insufficient credits" status (400)'
    )
    kind.add_argument("--error-body", choices=("full", "plain"), help="error bodies with data.error (full)")
    kind.add_argument("--edit-size", choices=("kontext", "input"), help="edit size without a ratio (kontext)")
    kind.add_argument(
        "--created-at-digits", type=int, choices=range(10), help="created_at fraction digits (3)"
    )
    kind.add_argument(
        "--error-code-type", choices=("string", "int"), help="error bodies' error_code type (string)"
    )
    kind.add_argument(
        "--poll-gap-s",
        type=float,
        help="429 for a check of a task closer than this to its previous check (2.0; 0: never)",
    )
    kind.add_argument(
        "--bad-values", choices=("refused", "task"), help="a bad value: 400, or a failed task (refused)"
    )
    return p


def _switches(args: argparse.Namespace) -> dict[str, Any]:
    """The kindness switches the command line sets (--kind first, then each flag given)."""
    out: dict[str, Any] = dict(KIND) if args.kind else {}
    if args.history_lenient:
        out["history_strict"] = False
    names = ("history_echo", "result_echo", "echo_style", "low_balance_status", "error_body", "edit_size")
    for name in (*names, "created_at_digits", "error_code_type", "poll_gap_s", "bad_values"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Start, print one line with the URL (never the key), serve until a signal, stop cleanly."""
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
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
        tls=tls,
        **_switches(args),
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
