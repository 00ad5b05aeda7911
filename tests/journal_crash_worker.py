"""Helper process for tests/test_journal.py: Generate then Poll Result through the real node
functions, loading the pack the way ComfyUI does. The test SIGKILLs it while it waits, then
recovers the task from the journal in another process.

Usage: python tests/journal_crash_worker.py PROMPT SEED  (connection settings come from the env:
WAVESPEED_API_KEY, WAVESPEED_BASE_URL, WAVESPEED_JOURNAL_DIR).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.pack_loader import load_pack  # noqa: E402


async def main(prompt: str, seed: int) -> None:
    nodes = load_pack().NODE_CLASS_MAPPINGS
    task, rid = await nodes["FluxKontextMaxGenerate"]().generate(
        prompt, seed=seed, guidance_scale=3.5, aspect_ratio="1:1", sync_mode=False
    )
    print(f"submitted {rid}", flush=True)
    await nodes["WaveSpeedPollResult"]().poll(60, "pass through", task=task)
    print(f"done {rid}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
