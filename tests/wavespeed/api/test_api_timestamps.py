"""The API's RFC 3339 timestamps (nanoseconds, ``Z``) read the same on every Python and in every
time zone. Found by running the suite on Python 3.10 (``scripts/test.sh --python 3.10``): the
fraction's digit count took in the digits of the ``+00:00`` the ``Z`` became, so the offset was cut
off: 3.10 could not parse the rest, and 3.11+ read it as local time, hours off for a user outside
UTC (the interrupted-submit history search then looked in the wrong window)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from types import ModuleType

import pytest


@pytest.fixture(params=["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def local_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_nanoseconds_and_z_in_any_local_zone(pack: ModuleType, local_zone: str) -> None:
    created = importlib.import_module(f"{pack.__name__}.wavespeed.journal.history_search").created_epoch
    assert created("2025-05-19T06:09:15.948268264Z") == pytest.approx(1747634955.948268, abs=1e-5)
    assert created("2025-05-19T06:09:15.9Z") == pytest.approx(1747634955.9, abs=1e-5)
    assert created("2025-05-19T15:09:15.948268264+09:00") == pytest.approx(1747634955.948268, abs=1e-5)
    assert created("2025-05-19T06:09:15Z") == pytest.approx(1747634955.0)
