"""WaveSpeed Connection Check: can this ComfyUI reach WaveSpeed? The free check of
wavespeed/tasks/connection_check.py as a node: one line per layer (DNS, proxy, TLS/CA, the key, the
balance), shown under the node and given as text, the first FAIL being the one to fix. It reads
the settings ComfyUI's process has (the key, WAVESPEED_BASE_URL, the proxy and CA variables) and
submits nothing.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from .shared import comfy_bridge as bridge
from .shared.runtime import PACK_KEY_FILE, submit_blocking
from .shared.widgets import schema


def _check() -> Any:
    from ..wavespeed import check_connection  # on first use: requests stays out of ComfyUI's start-up

    return check_connection(extra_key_files=(PACK_KEY_FILE,))


class WaveSpeedConnectionCheck(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    """Free: no price badge; an output node, so it runs on its own and shows its report under itself."""

    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "WaveSpeedConnectionCheck",
            "WaveSpeed Connection Check",
            "Check, for free, that this ComfyUI can reach WaveSpeed: one line per layer (DNS, "
            "proxy, TLS/CA, the key, the balance), saying which one fails and what to do. Submits nothing.",
            [],
            [
                io.String.Output(
                    display_name="report", tooltip="One line per layer: ok, FAIL (with what to do) or --."
                ),
                io.Boolean.Output(display_name="passed", tooltip="True when no layer failed."),
            ],
            output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> Any:
        """The network changes behind ComfyUI's back: check on every run."""
        return float("nan")

    @classmethod
    async def execute(cls) -> Any:
        checked = await submit_blocking(_check)
        bridge.send_status(cls.hidden.unique_id, checked.text)
        return io.NodeOutput(checked.text, bool(checked.passed))
