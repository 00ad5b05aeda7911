"""What a prompt may hold, and what a line break and a blank are in it: one reading for every node
and the price badge.

Generate, Edit and Multi-Reference validate one prompt that may span lines; Batch sends one prompt
per line; the Batch price badge counts those lines in the browser (JSONata on JavaScript strings).
Python's and JavaScript's built-ins disagree on both (``str.splitlines`` breaks on CR, VT, FF, NEL,
U+2028...; JSONata's ``$split(s, "\\n")`` on LF only; ``str.strip`` keeps U+FEFF, JavaScript's
``trim`` removes it), so neither decides: ``LINE_BREAK`` and ``NOT_BLANK`` are written out here once
as regular-expression strings that Python's ``re`` and JavaScript's ``RegExp`` read identically (an
alternation and character classes of ``\\uXXXX`` escapes, no flags), for the badge to take as data.

* Line breaks: the ones ``str.splitlines`` has always used (CRLF as one). Batch splits on exactly
  these, and a single prompt may hold any of them (an old-Mac CR, a pasted U+2028): a prompt is
  never refused for a line break another node reads as one.
* Blanks: Python's whitespace plus U+FEFF. It must hold every character JavaScript's ``trim``
  removes (the frontend trims a STRING widget before the expression sees it), or a line of U+FEFF
  would count in Python and not in the badge. A line with anything else is a prompt, stripped of
  blanks; a prompt of only invisible characters (U+200B) counts on both sides and is then refused
  by the request's own check, before anything is paid.
* What a prompt may hold (``check_prompt``): text the API would bill for but could not use (not
  UTF-8, a control character, a bidirectional override, nothing visible) is refused in one line
  before any request.
"""

from __future__ import annotations

import re
import unicodedata

from ..core.errors import ValidationError

MAX_PROMPT_CHARS = 10_000

#: What ends a prompt line, as a regular expression both engines read the same way.
LINE_BREAK = r"\r\n|[\n\u000b\u000c\r\u001c\u001d\u001e\u0085\u2028\u2029]"
#: The characters LINE_BREAK breaks on (CRLF is two of them).
LINE_BREAK_CHARS = frozenset("\n\u000b\u000c\r\u001c\u001d\u001e\u0085\u2028\u2029")
#: What a blank line consists of, and what is stripped from each prompt's ends.
BLANKS = (
    "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
#: A character that makes a line a prompt (a regular expression, as above).
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in BLANKS) + "]"

_LINE_BREAK = re.compile(LINE_BREAK)


def prompt_lines(text: str) -> list[str]:
    """The prompts a Batch text sends, one per line, each stripped of blanks; blank lines skipped."""
    return [line.strip(BLANKS) for line in _LINE_BREAK.split(text) if line.strip(BLANKS)]


# Invisible, but not in the categories below: Hangul fillers (Lo) and the blank braille pattern (So).
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Control, format, surrogate, unassigned, separators and combining marks: nothing a model can read.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"})


# Bidirectional embeddings, overrides and isolates: they reorder how the text is SHOWN, so the
# prompt on screen is not the prompt sent ("Trojan Source", CVE-2021-42574). The marks LRM, RLM
# and ALM only nudge one character's direction and are normal in right-to-left writing: allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_NAMES = {
    0x00: "NUL",
    0x0B: "VT",
    0x0C: "FF",
    0x0D: "CR",
    0x1B: "ESC",
    0x7F: "DEL",
    0x85: "NEL",
    0x9B: "CSI",
}


def _refused_control(prompt: str) -> tuple[int, str] | None:
    """The first character a prompt may not hold, and its index: a C0 control other than tab and
    the line breaks every node reads as such (prompt_text.LINE_BREAK: LF, CR, CRLF, VT, FF, ...),
    DEL, a C1 control other than NEL (ANSI escapes start with ESC or CSI), or a bidirectional
    control."""
    for index, char in enumerate(prompt):
        code = ord(char)
        if char == "\t" or char in LINE_BREAK_CHARS:
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI_CONTROLS:
            return index, char
    return None


def _visible(char: str) -> bool:
    return char not in _INVISIBLE_EXTRA and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def check_prompt(prompt: object) -> None:
    """Refuse a prompt the API would bill for but could not use: not text, not valid Unicode
    (a lone surrogate cannot be sent as UTF-8), a control character (NUL, an ANSI escape, a
    bidirectional override: see ``_refused_control``), or nothing visible in it (zero-width
    spaces, word joiners, BOMs, bare combining marks: a blank prompt in disguise)."""
    if not isinstance(prompt, str):
        raise ValidationError(f"prompt must be text, got {type(prompt).__name__}: connect a STRING.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(prompt[exc.start])
        raise ValidationError(
            f"prompt has a broken character (unpaired surrogate U+{bad:04X} at position {exc.start + 1}), "
            "usually from a bad copy-paste: retype that part of the prompt."
        ) from None
    if not any(_visible(c) for c in prompt):
        if not prompt.strip():
            raise ValidationError("prompt is empty: describe the image you want (the API requires a prompt).")
        first = next(c for c in prompt if not c.isspace())
        name = unicodedata.name(first, "unnamed")
        raise ValidationError(
            f"prompt is empty: it holds only invisible characters (such as U+{ord(first):04X} {name}); "
            "describe the image you want (the API requires a prompt)."
        )
    refused = _refused_control(prompt)
    if refused is not None:
        index, char = refused
        code = ord(char)
        label = _CONTROL_NAMES.get(code) or unicodedata.name(char, "a control character")
        if char in _BIDI_CONTROLS:
            why = "a bidirectional control: the text shown would not be the text sent"
        elif code in (0x1B, 0x9B):
            why = "the start of an ANSI escape sequence, as pasted from a terminal"
        else:
            why = "a control character; only line breaks and tabs are allowed"
        raise ValidationError(
            f"prompt has U+{code:04X} {label} at position {index + 1} ({why}): remove it and queue again."
        )
