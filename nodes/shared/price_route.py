"""The price definition as a route of ComfyUI's server, for the pack's web extension.

``GET /wavespeed_kontext/prices`` (and ``/api/...``, as ComfyUI prefixes every route) answers
pricing.py's ``price_definition`` of the paid nodes' rules (widgets.PRICE_RULES): the
same unit prices and multiplier widgets the nodes charge by. web/price.js computes the badge's text
from it. The route is added to ``PromptServer.instance.routes`` while ComfyUI loads the pack, before
it starts serving; outside ComfyUI (tests, scripts) there is no server and nothing is added.
"""

from __future__ import annotations

import logging
from typing import Any

from .pricing import price_definition
from .widgets import PRICE_RULES

PRICES_PATH = "/wavespeed_kontext/prices"
log = logging.getLogger("wavespeed")
_served: list[Any] = []  # the server the route was added to (once per process)


def prices() -> dict[str, Any]:
    """What the route answers: every paid node's price rule and how its widgets count."""
    return price_definition(dict(PRICE_RULES))


def serve_prices() -> None:
    """Add the route to ComfyUI's server, once; a no-op outside ComfyUI."""
    try:
        from aiohttp import web
        from server import PromptServer
    except Exception:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None or server in _served:
        return

    async def answer(_request: Any) -> Any:
        return web.json_response(prices(), headers={"Cache-Control": "no-store"})

    server.routes.get(PRICES_PATH)(answer)
    _served.append(server)
    log.debug("WaveSpeed: price definition served at %s", PRICES_PATH)
