"""Can this machine reach WaveSpeed? One line per layer (DNS, proxy, TLS/CA, the key, the balance),
the first FAIL being the one to fix, with what to do. Free: it reads the balance, submits nothing.

    python scripts/check_connection.py          # with the settings ComfyUI would use

It reads what the nodes read: WAVESPEED_API_KEY (or the key files), WAVESPEED_BASE_URL,
HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY and REQUESTS_CA_BUNDLE / SSL_CERT_FILE. Run it in
the environment ComfyUI starts in. Exit status 0 when every layer passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.pack_loader import load_pack  # noqa: E402

load_pack()
from wavespeed_kontext_pack.wavespeed.tasks.connection_check import check_connection  # noqa: E402

PACK_KEY_FILE = ROOT / "wavespeed_api_key.txt"  # the key file the nodes also read (git-ignored)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/check_connection.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step (default 10)")
    args = parser.parse_args(argv)
    checked = check_connection(extra_key_files=(PACK_KEY_FILE,), timeout_s=args.timeout)
    print(checked.text, flush=True)
    return 0 if checked.passed else 1


if __name__ == "__main__":
    sys.exit(main())
