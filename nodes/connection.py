"""WaveSpeed Connection Check: can this ComfyUI reach WaveSpeed? The free check of
wavespeed/tasks/connection_check.py as a node: one line per layer (DNS, proxy, TLS/CA, the key, the
balance), shown under the node and given as text, the first FAIL being the one to fix. It reads
the settings ComfyUI's process has (the key, WAVESPEED_BASE_URL, the proxy and CA variables) and
submits nothing.
"""

from __future__ import annotations

from typing import Any

from .shared import comfy_bridge as bridge
from .shared.runtime import PACK_KEY_FILE, submit_blocking


def _check() -> Any:
    from ..wavespeed import check_connection  # on first use: requests stays out of ComfyUI's start-up

    return check_connection(extra_key_files=(PACK_KEY_FILE,))


class WaveSpeedConnectionCheck:
    """The Connection Check node's work (declared to ComfyUI in nodes/v3/check_node.py)."""

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> Any:
        """The network changes behind ComfyUI's back: check on every run."""
        return float("nan")

    async def check(self, unique_id: str | None = None) -> tuple[str, bool]:
        checked = await submit_blocking(_check)
        bridge.send_status(unique_id, checked.text)
        return checked.text, bool(checked.passed)
