"""WaveSpeed Connection Check as ComfyUI sees it (free: no price badge; an output node, so it runs
on its own and shows its report under itself); the work is nodes/connection.py's."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from .. import connection
from .common import run_work, schema


class WaveSpeedConnectionCheck(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
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
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return connection.WaveSpeedConnectionCheck.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(connection.WaveSpeedConnectionCheck().check, cls, inputs)
