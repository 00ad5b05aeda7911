"""The API key's forms, computed independently of wavespeed/core/redaction.py, and the pieces of them a
text holds: what the key-safety tests check every error and log line against."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote

CASE_1_KEY = "ws-live-7Q2mX9vK4pL8rT1nB6cY3hJ5"  # 32 characters, like a real key


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def upper_hex(text: str) -> str:
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group().upper(), text)


def every_byte(key: str, case: str = "upper") -> str:
    """The key percent-encoded byte for byte, letters included: hex in ``upper``, ``lower`` or
    ``mixed`` case (alternating per byte)."""
    out = []
    for i, byte in enumerate(key.encode()):
        upper = case == "upper" or (case == "mixed" and i % 2 == 0)
        out.append(f"%{byte:02X}" if upper else f"%{byte:02x}")
    return "".join(out)


def _inside_blob(encode: Callable[[bytes], bytes], data: bytes, align: int) -> str:
    """The base64 characters fixed by ``data`` alone when ``align`` bytes come before it: those
    equal whether the bytes around it are all zeros or all ones."""
    low = encode(b"\0" * align + data + b"\0" * 3).decode()
    high = encode(b"\xff" * align + data + b"\xff" * 3).decode()
    same = "".join(a if a == b else "\n" for a, b in zip(low, high, strict=True))
    return max(same.split("\n"), key=len)


def key_forms(key: str) -> set[str]:
    """The key raw, URL-encoded (quote, quote_plus, encodeURIComponent; upper and lower hex) and
    base64 (standard, URL-safe, padded or not, and inside a longer blob at each alignment)."""
    data = key.encode()
    found = {key, every_byte(key), every_byte(key, "lower")}
    for safe in ("", "/", "!'()*~"):
        for encoded in (quote(key, safe=safe), quote_plus(key, safe=safe)):
            found |= {encoded, lower_hex(encoded)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        found |= {whole, whole.rstrip("=")}
        found |= {_inside_blob(encode, data, align) for align in range(3)}
    return found


def leaks(text: str, key: str) -> set[str]:
    """Every 8 consecutive characters of a form of ``key`` that ``text`` holds (its percent-escapes
    read in either case), and every 8 of the key itself that the text holds once percent-decoded
    (once or twice: urllib's ``unquote``, any mix of escaped and plain characters)."""
    views = {text, upper_hex(text)}
    found = {
        f[i : i + 8] for f in key_forms(key) for i in range(len(f) - 7) for v in views if f[i : i + 8] in v
    }
    once = unquote(text)
    for decoded in (once, unquote(once)):
        found |= {key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in decoded}
    return found
