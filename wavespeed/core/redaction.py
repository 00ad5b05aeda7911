"""Keeping the API key out of every text the pack shows or writes: errors, log lines, the journal.

Decisions, and why:

* **Every form a server could echo.** The key raw; URL-encoded as ``quote`` (with and without
  ``/`` safe), ``quote_plus`` and JavaScript's ``encodeURIComponent`` write it, with upper- or
  lower-case hex (the text is matched with the hex after each ``%`` upper-cased, position for
  position, so mixed case is caught too); percent-encoded in any mix, byte for byte included
  (``%73%6B…``, any case): the text is also read with its ``%XX`` escapes of ASCII decoded, once
  and twice (``%2573``), each decoded character standing for the escape it came from;
  JSON-escaped; and base64, standard and URL-safe, padded or not, also *inside* a longer base64
  blob (``Basic base64(user:key)``), where the key starts at one of three bit alignments: for
  each, the characters that depend on the key's bytes alone.
* **Fragments, not just wholes.** Any :data:`GRAM` (8) consecutive characters of any of those forms
  are redacted: a text cut anywhere, or a server that echoes half the key, shows at most 7
  characters of it. The price: a text sharing 8 characters with a form is redacted too (a hex
  task id and a hex key do so about once in 3 million errors; test keys avoid ids' digit runs).
  Every window of the text is looked up in one set of the forms' 8-grams; in a
  long text (a hostile reply holds up to 1 MiB) a rolling hash computed with numpy picks the
  candidate windows first, so the work stays linear and small whatever the number of keys.
* **A fixed point.** Each run of matched windows becomes ``***``, and the text around each marker
  is looked at again until nothing matches: a key holding ``*`` cannot rebuild itself around the
  marker. Each round shortens the text, so it ends.
* **Logs too.** :class:`RedactingFilter` sits on the pack's ``wavespeed`` logger (made here, with
  its filter, so every module that logs gets it) and on every logger that handles our traffic
  (``urllib3`` and ``requests`` and each of their module loggers: urllib3 logs a reply's header
  lines at WARNING when it cannot parse them, key and all): the formatted message, the traceback
  text and the stack text of each record are redacted before any handler sees them. A logger
  filter sees only records made on that logger, so each module logger gets its own, whenever a
  secret is registered (by then the HTTP stack is imported) and for the names urllib3 uses.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "GRAM",
    "LOGGER_NAME",
    "MARKER",
    "TRAFFIC_LOGGERS",
    "RedactingFilter",
    "forms",
    "guard_traffic_loggers",
    "redact",
    "register_secret",
]

GRAM = 8
"""Consecutive characters of a key form that count as a leak (a shorter piece is not redacted)."""

MARKER = "***"
MIN_SECRET = 4  # shorter values would redact ordinary words
LOGGER_NAME = "wavespeed"
TRAFFIC_LOGGERS = ("urllib3", "requests")
"""The libraries that carry our traffic; their loggers (and every module logger below them) redact."""
# urllib3's module loggers, made ahead so a module imported later finds its logger already guarded.
_KNOWN_TRAFFIC_LOGGERS = (
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.util.ssl_",
    "urllib3.contrib.socks",
)
_JS_SAFE = "!'()*~"  # what encodeURIComponent leaves alone beyond Python's always-safe set


def _url_forms(secret: str) -> set[str]:
    out: set[str] = set()
    for safe in ("", "/", _JS_SAFE):
        out.add(quote(secret, safe=safe))
        out.add(quote_plus(secret, safe=safe))
    return out


def _base64_forms(data: bytes) -> set[str]:
    """Standalone encodings, and for each alignment the run of characters fixed by ``data`` alone."""
    out: set[str] = set()
    encoders: tuple[Callable[[bytes], bytes], ...] = (base64.b64encode, base64.urlsafe_b64encode)
    for encode in encoders:
        whole = encode(data).decode("ascii")
        out.update((whole, whole.rstrip("=")))
        for align in range(3):
            text = encode(b"\0" * align + data).decode("ascii")
            first = -(-8 * align // 6)  # the first character holding no bit from before the key
            last = 8 * (align + len(data)) // 6  # one past the last holding no bit from after it
            if last - first >= GRAM:
                out.add(text[first:last])
    return out


def forms(secret: str) -> set[str]:
    """Every text a server could echo ``secret`` as (see the module docstring)."""
    found = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    found |= _url_forms(secret)
    found.add("".join(f"%{byte:02X}" for byte in secret.encode("utf-8")))  # byte for byte
    found |= _base64_forms(secret.encode("utf-8"))
    return {f for f in found if f}


def _upper_hex(text: str) -> str:
    """``text`` with the hex of each ``%XX`` upper-cased: same length, same positions."""
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group().upper(), text) if "%" in text else text


def _lower_hex(text: str) -> str:
    """Percent-escapes with lower-case hex, as some servers write them."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


class _Registry:
    """The registered secrets as matching data: the 8-grams of every form (and whole forms
    shorter than that), replaced as one immutable snapshot so readers need no lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: frozenset[str] = frozenset()
        self.grams: frozenset[str] = frozenset()
        self.shorts: tuple[str, ...] = ()
        self._hashes: tuple[frozenset[str], Any] | None = None

    def hashes(self) -> Any:
        """The grams' rolling hashes as a sorted numpy array (built on the first long text)."""
        grams, cached = self.grams, self._hashes
        if cached is not None and cached[0] is grams:
            return cached[1]
        import numpy as np

        values = np.array(sorted({_hash(g) for g in grams}), dtype=np.uint64)
        self._hashes = (grams, values)
        return values

    def add(self, secret: str) -> None:
        with self._lock:
            if secret in self.secrets:
                return
            grams, shorts = set(self.grams), set(self.shorts)
            for form in forms(secret):
                for variant in {form, _upper_hex(form), _lower_hex(form)}:
                    if len(variant) < GRAM:
                        shorts.add(variant)
                    grams.update(variant[i : i + GRAM] for i in range(len(variant) - GRAM + 1))
            self.grams, self.shorts = frozenset(grams), tuple(sorted(shorts, key=len, reverse=True))
            self.secrets = self.secrets | {secret}

    def replace(self, secrets: Iterable[str]) -> None:
        """Start over with exactly ``secrets`` (tests use it to undo their registrations)."""
        secrets = frozenset(secrets)
        if secrets == self.secrets:
            return
        with self._lock:
            self.secrets, self.grams, self.shorts = frozenset(), frozenset(), ()
        for secret in secrets:
            self.add(secret)


REGISTRY = _Registry()


def register_secret(secret: str) -> None:
    """Remember a value (the API key) that must never appear in an error, log line or journal
    row, in any form a server could echo it in."""
    if secret and len(secret) >= MIN_SECRET:
        REGISTRY.add(secret)
        guard_traffic_loggers()


_P = 0x100000001B3  # the rolling hash's multiplier (FNV's prime), modulo 2**64
_MASK = (1 << 64) - 1
_LONG = 4096  # texts longer than this are scanned with numpy (a hostile reply holds up to 1 MiB)


def _hash(gram: str) -> int:
    value = 0
    for char in gram:
        value = (value * _P + ord(char)) & _MASK
    return value


def _starts(view: str, grams: frozenset[str]) -> list[int]:
    """Where a window of ``view`` is a gram: one set lookup per character, or for a long text a
    vectorised rolling hash picks the candidates and the set confirms them."""
    count = len(view) - GRAM + 1
    if count <= _LONG:
        return [i for i in range(count) if view[i : i + GRAM] in grams]
    import numpy as np

    codes = np.frombuffer(view.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    for k in range(GRAM):
        hashes = hashes * np.uint64(_P) + codes[k : k + count]
    known = REGISTRY.hashes()
    if not len(known):
        return []
    at = np.minimum(np.searchsorted(known, hashes), len(known) - 1)
    candidates = np.flatnonzero(known[at] == hashes).tolist()
    return [i for i in candidates if view[i : i + GRAM] in grams]


_ESCAPE = re.compile(r"%([0-7][0-9a-fA-F])")  # an ASCII byte, percent-encoded (the key is ASCII)
DECODE_ROUNDS = 2  # %73 and %2573 (encoded twice)


class _View:
    """A reading of the text, and for each of its characters the [start, end) of the text it
    stands for (a decoded escape stands for the three characters it came from)."""

    def __init__(self, text: str, starts: list[int] | None = None, ends: list[int] | None = None) -> None:
        self.text = text
        self.starts = starts
        self.ends = ends

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Where the view's [start, end) lies in the text."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]

    def decoded(self) -> _View | None:
        """The view with its ASCII ``%XX`` escapes decoded; None when it holds none."""
        if "%" not in self.text or _ESCAPE.search(self.text) is None:
            return None
        starts = self.starts if self.starts is not None else range(len(self.text))
        ends = self.ends if self.ends is not None else range(1, len(self.text) + 1)
        text: list[str] = []
        new_starts: list[int] = []
        new_ends: list[int] = []
        at = 0
        for match in _ESCAPE.finditer(self.text):
            begin = match.start()
            text += [self.text[at:begin], chr(int(match.group(1), 16))]
            new_starts += [*starts[at:begin], starts[begin]]
            new_ends += [*ends[at:begin], ends[begin + 2]]
            at = match.end()
        text.append(self.text[at:])
        new_starts += starts[at:]
        new_ends += ends[at:]
        return _View("".join(text), new_starts, new_ends)


def _views(text: str) -> list[_View]:
    """The text as written, with its escapes' hex upper-cased, and percent-decoded (see above)."""
    hexed = _upper_hex(text)
    views = [_View(text)] if hexed == text else [_View(text), _View(hexed)]
    view: _View | None = views[0]
    for _ in range(DECODE_ROUNDS):
        view = view.decoded() if view is not None else None
        if view is None:
            break
        views.append(view)
    return views


def _spans(text: str, grams: frozenset[str], shorts: tuple[str, ...]) -> list[tuple[int, int]]:
    """Merged [start, end) runs of ``text`` covered by a matching window of any of its views."""
    hits: list[tuple[int, int]] = []
    for view in _views(text):
        found = [(i, i + GRAM) for i in _starts(view.text, grams)]
        for short in shorts:
            start = view.text.find(short)
            while start >= 0:
                found.append((start, start + len(short)))
                start = view.text.find(short, start + 1)
        hits += [view.span(start, end) for start, end in found]
    return _merge(hits)


def _merge(hits: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching [start, end) runs joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(hits):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(text: str) -> str:
    """``text`` with every piece of a registered secret (any form, any 8+ characters) replaced by
    ``***``; the result holds none, even where a marker meets what was around it."""
    grams, shorts = REGISTRY.grams, REGISTRY.shorts
    if not grams and not shorts:
        return text
    spans = _spans(text, grams, shorts)
    while spans:
        pieces, marks, at, size = [], [], 0, 0
        for start, end in spans:
            pieces += [text[at:start], MARKER]
            size += start - at
            marks.append(size)
            size += len(MARKER)
            at = end
        text = "".join(pieces) + text[at:]
        # A new match must hold a marker's character: look only around the markers.
        near = [(max(0, m - GRAM + 1), m + len(MARKER) + GRAM - 1) for m in marks]
        spans = _merge(
            (lo + start, lo + end)
            for lo, hi in _merge(near)
            for start, end in _spans(text[lo:hi], grams, shorts)
        )
    return text


class RedactingFilter(logging.Filter):
    """Redacts every record of the logger it sits on: message with its arguments, traceback and
    stack text (the traceback is rendered here, so no handler formats the raw exception again)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show the pieces rather than lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _guard(logger: logging.Logger) -> logging.Logger:
    """``logger`` with this module's redacting filter, installed once per copy of this module (a
    test run may import the pack twice; each copy redacts its own registry)."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def pack_logger() -> logging.Logger:
    """The pack's logger (``wavespeed``), redacting."""
    return _guard(logging.getLogger(LOGGER_NAME))


def guard_traffic_loggers() -> None:
    """Put the redacting filter on every logger of the libraries that carry our traffic: the ones
    that exist now (their modules are imported) and the names urllib3 logs under."""
    names = {
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name == lib or name.startswith(lib + ".") for lib in TRAFFIC_LOGGERS)
    }
    for name in sorted(names | set(TRAFFIC_LOGGERS) | set(_KNOWN_TRAFFIC_LOGGERS)):
        _guard(logging.getLogger(name))


log = pack_logger()
guard_traffic_loggers()
