"""How an armed fault rule acts on a request (fault_rules.py says which kinds exist and where they apply).

pre_fault() runs before the route: it either changes how the reply will be written (slow,
dribble, absurd) or answers in place of the route. The kinds that act inside a route (truncate,
corrupt, *_after_accept) are applied by routes/handler.py; corrupt() is the download corruption.
"""

from __future__ import annotations

import numpy as np

from ..routes.wire import ReplyHandler, ResetConnection, reason
from .fault_rules import FaultRule
from .imagegen import is_decodable

_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _retry_after(rule: FaultRule) -> dict[str, str]:
    return {"Retry-After": str(int(round(rule.retry_after)))} if rule.retry_after is not None else {}


def pre_fault(h: ReplyHandler, rule: FaultRule) -> bool:
    """Apply a fault before normal handling.

    Returns:
        True to go on and handle the request, False if the fault has answered it.
    Raises:
        ResetConnection: for the 'reset' kind (the caller aborts the connection).
    """
    kind = rule.kind
    if kind == "slow":
        h.backend.wait(rule.delay_s or 0.0)
        return True
    if kind == "dribble":
        h.dribble_s = rule.delay_s
        return True
    if kind == "absurd":
        h.absurd = True
        return True
    if kind == "retry_after":
        status = rule.status or 429
        h.reply_error(status, rule.message or reason(status), {"Retry-After": rule.message or "soon"})
        return False
    if kind == "huge":
        h.reply_huge()
        return False
    if kind == "status":
        status = rule.status or 500
        h.reply_error(
            status,
            rule.message or reason(status),
            _retry_after(rule),
            detail=rule.detail,
            error_code=rule.error_code,
        )
        return False
    if kind == "html":
        status = rule.status or 502
        page = _HTML_PAGE.format(code=status, reason=rule.message or reason(status))
        h.reply(status, page.encode(), "text/html", _retry_after(rule))
        return False
    if kind == "reset":
        raise ResetConnection()
    if kind == "malformed":
        h.reply(200, b'{"code": 200, "message": "success", "data": {', "application/json")
        return False
    if kind == "wrong_shape":
        h.reply_json(200, {"code": 200, "message": "success", "data": {"status": 42}})
        return False
    if kind == "envelope_error":
        status = rule.status or 500
        h.reply_json(200, {"code": status, "message": rule.message or reason(status), "data": None})
        return False
    return True  # truncate / corrupt / *_after_accept act inside the route handlers


def corrupt(data: bytes) -> bytes:
    """Same length, garbage from the middle on; if that still decodes (lenient WebP/BMP), start earlier."""
    for start in (len(data) // 2, 16, 0):
        n = len(data) - start
        garbage = ((np.arange(n, dtype=np.uint32) * 131 + 7) % 256).astype(np.uint8).tobytes()
        bad = data[:start] + garbage
        if not is_decodable(bad):
            return bad
    return bad  # unreachable in practice: garbage from byte 0 has no image signature
