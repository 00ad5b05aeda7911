"""Shared pytest fixtures: a fresh WaveSpeed API emulator per test (no ComfyUI needed)."""

from __future__ import annotations

import importlib.abc
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator
from scripts.pack_loader import PACK_NAME, load_nodes, load_pack


class _OneNameForThePack(importlib.abc.MetaPathFinder):
    """Refuse ``import wavespeed``: the pack imported under a second name would hold a second copy of
    its process-wide registries (keys to redact, pollers, upload cache), and tests would check one copy
    while the nodes use the other."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "wavespeed" or name.startswith("wavespeed."):
            raise ImportError(f"import the pack as {PACK_NAME}.wavespeed, not as '{name}' (one name per run)")


sys.meta_path.insert(0, _OneNameForThePack())
load_pack()
load_nodes()  # the node modules, on ComfyUI's comfy_api.latest, as when ComfyUI calls comfy_entrypoint

from wavespeed_kontext_pack.wavespeed.core import redaction  # noqa: E402  (after load_pack: the pack's one name)
from wavespeed_kontext_pack.wavespeed.limits.poller import reset_pollers  # noqa: E402
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient  # noqa: E402

from tests.support.clients import fast_client  # noqa: E402
from tests.support.hostile_server import RawServer, Script  # noqa: E402
from tests.support.node_calls import restart_pack  # noqa: E402
from tests.support.postgres import PostgresServer, postgres_server  # noqa: E402
from tests.support.proxy_tls import Tinyproxy  # noqa: E402

TEST_API_KEY = "test-key-0123456789"


@pytest.fixture(autouse=True, scope="module")
def _keys_registered_in_a_module_end_with_it() -> Iterator[None]:
    """Errors redact any 8 characters of every key registered in the process: a key one test
    registered would otherwise redact another test's texts (a "...-0123456789" key and a
    "0123456789abcdef..." task id share 8 characters). Module fixtures register theirs too."""
    saved = redaction.REGISTRY.secrets
    yield
    redaction.REGISTRY.replace(saved)


@pytest.fixture(autouse=True)
def _keys_registered_by_a_test_end_with_it() -> Iterator[None]:
    saved = redaction.REGISTRY.secrets
    yield
    redaction.REGISTRY.replace(saved)


@pytest.fixture(autouse=True)
def _pollers_end_with_the_test() -> Iterator[None]:
    """A poller is per account (base URL + key) and polls through the client that made it: a later
    test's emulator may get an earlier one's port, and must not be polled through that test's client."""
    yield
    reset_pollers()


@pytest.fixture
def api_key() -> str:
    """The Bearer key the `emulator` fixture accepts (a fixture, so tests need no conftest import)."""
    return TEST_API_KEY


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator on a free loopback port with short (0.2 s) tasks, stopped after the test. It
    answers 429 to a check of a task less than 2 s after the previous one (WaveSpeed's published
    pace, the emulator's default): a test that checks a task faster than the pack does fails."""
    with Emulator(api_keys=(TEST_API_KEY,), inference_s=0.2, poll_gap_s=2.0) as emu:
        yield emu


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Keywords for the `client` fixture's fast_client; a test module overrides this fixture to
    give all its tests another setting (more attempts, shorter timeouts)."""
    return {}


@pytest.fixture
def client(emulator: Emulator, api_key: str, client_options: dict[str, Any]) -> Iterator[WaveSpeedClient]:
    """A fast_client (tests/support/clients.py) on the `emulator`, closed after the test."""
    with fast_client(emulator.base_url, api_key, **client_options) as c:
        yield c


@pytest.fixture
def pack() -> ModuleType:
    return load_pack()


@pytest.fixture
def pack_env(emulator: Emulator, api_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Emulator:
    """Point the pack at the emulator through the environment, as a user would set it up."""
    monkeypatch.setenv("WAVESPEED_API_KEY", api_key)
    monkeypatch.setenv("WAVESPEED_BASE_URL", emulator.base_url)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stray ~/.config key file
    monkeypatch.delenv("WAVESPEED_CONFIG_FILE", raising=False)
    monkeypatch.delenv("WAVESPEED_JOURNAL_URL", raising=False)  # a farm test names its database itself
    return emulator


@pytest.fixture
def raw_server() -> Iterator[Callable[[Script], RawServer]]:
    """Start a RawServer (tests/support/hostile_server.py) that runs a script per connection;
    every one started is stopped after the test."""
    started: list[RawServer] = []

    def start(script: Script) -> RawServer:
        started.append(RawServer(script))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fresh_upload_cache(pack: ModuleType) -> Iterator[None]:
    """No reference upload remembered from another test (a cached URL would skip the upload)."""
    pack.wavespeed.net.reference_uploads.CACHE.clear()
    yield
    pack.wavespeed.net.reference_uploads.CACHE.clear()


@pytest.fixture
def journal_dir(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """A fresh journal directory and fresh in-memory state (as after a ComfyUI restart), with no
    session budget or balance display set."""
    directory = tmp_path / "journal"
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(directory))
    monkeypatch.delenv("WAVESPEED_JOURNAL_URL", raising=False)
    monkeypatch.delenv("WAVESPEED_SESSION_BUDGET_USD", raising=False)
    monkeypatch.delenv("WAVESPEED_SHOW_BALANCE", raising=False)
    restart_pack(pack)
    yield directory
    restart_pack(pack)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    """Debian's tinyproxy on a free loopback port, tunnelling to loopback only (tests/support/
    proxy_tls.py), stopped after the test."""
    (tmp_path / "proxy").mkdir()
    running = Tinyproxy(tmp_path / "proxy")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """ONE throw-away PostgreSQL cluster per test session (per xdist worker): tests take a fresh
    database on it (``pg_url``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh empty database on the session's cluster: its postgresql:// URL (with the password)."""
    return postgres.create_database(f"t_{secrets.token_hex(6)}")


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """A journal per call, empty, on each backend: a new SQLite folder, or the test's PostgreSQL
    database with its rows deleted (for property tests that need a fresh journal per example)."""
    from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal
    from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal

    opened: list[Any] = []
    if request.param == "postgres":
        shared = PostgresJournal(request.getfixturevalue("pg_url"))
        opened.append(shared)

    def fresh() -> Any:
        if request.param == "sqlite":
            journal = Journal(tmp_path / f"journal-{len(opened)}")
            opened.append(journal)
            return journal
        with shared.transaction() as conn:
            conn.execute("DELETE FROM tasks")
            conn.execute("DELETE FROM intents")
        return shared

    yield fresh
    for journal in opened:
        journal.close()
