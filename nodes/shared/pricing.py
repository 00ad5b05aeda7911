"""The price badge expression of a paid node (JSONata, evaluated by the ComfyUI frontend).

Pure (no ComfyUI import) so that tests can build the same expression the V3 schema declares.
The badge is the node's model price per output image times every input named in
``PRICE_MULTIPLIERS`` that the node declares; it is plain text in dollars because the frontend
shows ``usd`` results as Comfy credits, which is not what WaveSpeed bills.

The Batch node's prompts are counted with the one reading of line breaks and blanks every node
uses (wavespeed/api/prompt_text.py: ``LINE_BREAK`` and ``NOT_BLANK`` are regular-expression strings
that Python's ``re`` and JavaScript's ``RegExp`` read identically), so the badge counts exactly the
prompts the node sends.
"""

from __future__ import annotations

from ...wavespeed import BLANKS, LINE_BREAK, NOT_BLANK, prompt_lines

__all__ = [
    "BLANKS",
    "LINE_BREAK",
    "NOT_BLANK",
    "PRICE_MULTIPLIERS",
    "multipliers_of",
    "price_badge_expr",
    "prompt_lines",
]


#: Widgets that multiply the per-image price, with their JSONata value (the frontend's widget values).
#: ``prompts`` (the Batch node) counts ``prompt_lines``: lines holding a character not in ``BLANKS``.
PRICE_MULTIPLIERS: dict[str, str] = {
    "count": "widgets.count",
    "variations": "widgets.variations",
    "prompts": f"$count($split(widgets.prompts, /{LINE_BREAK}/)[$contains($, /{NOT_BLANK}/)])",
}


def multipliers_of(input_names: list[str]) -> list[str]:
    """The price-changing widgets among a node's inputs, in PRICE_MULTIPLIERS order."""
    return [name for name in PRICE_MULTIPLIERS if name in input_names]


def price_badge_expr(unit_usd: float, multipliers: list[str]) -> str:
    """Unit price times each multiplier widget, shown as e.g. "$0.08/Run"."""
    usd = " * ".join([repr(unit_usd), *(PRICE_MULTIPLIERS[name] for name in multipliers)])
    return '{"type": "text", "text": "$" & $formatNumber(' + usd + ', "0.00") & "/Run"}'
