"""The price of a paid node as data: what the node charges by, served to the pack's web extension.

Pure (no ComfyUI import). A node's price is its model's price per output image times every input
named in ``PRICE_MULTIPLIERS`` that the node declares (``price_rule``). The model's price is the
chosen family's (the ``model`` widget, wavespeed/api/models.py ``FAMILY_INPUT``), else the default
family's ([max]): each family's price comes from the table of models, so the badge follows the choice. ``price_definition`` is the
whole table as JSON-ready data; the web extension fetches it (price_route.py) and
web/price.js turns it and the node's widget values into the badge's text. The frontend's own
``price_badge`` is not used: it draws only on comfy.org partner nodes, which ours are not.

The Batch node's prompts are counted with the one reading of line breaks and blanks every node
uses (wavespeed/api/prompt_text.py: ``LINE_BREAK`` and ``NOT_BLANK`` are regular-expression strings
that Python's ``re`` and JavaScript's ``RegExp`` read identically): the definition carries both, and
web/price.js counts with them exactly the prompts the node sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...wavespeed import models, prompt_text

BLANKS, LINE_BREAK, NOT_BLANK = prompt_text.BLANKS, prompt_text.LINE_BREAK, prompt_text.NOT_BLANK
prompt_lines = prompt_text.prompt_lines

__all__ = [
    "BLANKS",
    "LINE_BREAK",
    "NOT_BLANK",
    "PRICE_MULTIPLIERS",
    "multipliers_of",
    "price_definition",
    "price_rule",
    "prompt_lines",
]


#: Widgets that multiply the per-image price, and how their value counts: ``number`` as it is, ``lines``
#: as the prompts ``prompt_lines`` finds in the text (web/price.js: lines holding a NOT_BLANK character).
PRICE_MULTIPLIERS: dict[str, str] = {"count": "number", "variations": "number", "prompts": "lines"}


def multipliers_of(input_names: list[str]) -> list[str]:
    """The price-changing widgets among a node's inputs, in PRICE_MULTIPLIERS order."""
    return [name for name in PRICE_MULTIPLIERS if name in input_names]


def price_rule(family_prices: Mapping[str, float], input_names: list[str]) -> dict[str, Any]:
    """One node's price: its chosen family's price per task (``family_prices``, by the family's
    label; the default family's when nothing is chosen), times each multiplier widget it declares."""
    return {
        "unit_usd": family_prices[models.FAMILIES[models.DEFAULT_FAMILY]],
        "per": multipliers_of(input_names),
        "model_input": models.FAMILY_INPUT,
        "unit_by_model": dict(family_prices),
    }


def price_definition(rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every paid node's rule by node id, with how widgets count: what web/price.js reads."""
    return {
        "nodes": rules,
        "multipliers": PRICE_MULTIPLIERS,
        "line_break": LINE_BREAK,
        "not_blank": NOT_BLANK,
    }
