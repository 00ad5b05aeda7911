"""The pinned build files must install on a fresh machine: no pin may point at a local file or URL."""

from __future__ import annotations

import pytest

from scripts.pack_loader import REPO_ROOT

PIN_FILES = sorted(
    p.name for p in REPO_ROOT.glob("*.txt") if p.name.startswith(("requirements", "constraints"))
)


@pytest.mark.parametrize("name", PIN_FILES)
def test_pins_name_packages_not_local_files(name: str) -> None:
    """A `pkg @ file:///tmp/...` line (left by pip freeze) installs only on the machine that froze it."""
    bad = [
        line
        for line in (REPO_ROOT / name).read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#") and (" @ " in line or "://" in line)
    ]
    assert not bad, f"{name} pins a direct reference: {bad}"


def test_the_pin_files_exist() -> None:
    assert {"requirements.txt", "constraints.txt"} <= set(PIN_FILES)
