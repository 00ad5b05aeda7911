"""What a line break and a blank are in prompt text: one reading for every node and the price badge.

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
"""

from __future__ import annotations

import re

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
