"""One account identity, owned by the client: the journal's rows, the submit scheduler, the poller and
the node layer's client cache all know an account by ``WaveSpeedClient.account_tag``, and nothing
outside wavespeed/net reads or hashes the key (so no second place can name the account differently:
before, the scheduler and poller used ``base_url#tag`` while the journal used ``tag``, and the
client cache hashed the key on its own)."""

from __future__ import annotations

import ast
import asyncio
import importlib
from pathlib import Path
from types import ModuleType

from emulator import Emulator
from scripts import layout
from scripts.pack_loader import REPO_ROOT
from tests.support.node_calls import generate, nodes_client, poll

PACK_DIRS = ("wavespeed", "nodes")
KEY_OWNER = Path("wavespeed", "net")


def _mod(pack: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{pack.__name__}.{name}")


def _pack_modules() -> list[Path]:
    return sorted(p for m, p in layout.modules().items() if m.split(".")[0] in PACK_DIRS)


def _key_readings(path: Path) -> list[str]:
    """Where a module reads the client's private key, or hashes anything while naming an API key."""
    tree = layout.parse_source(path)
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    hashes = any(
        getattr(n, "module", None) == "hashlib" or any(a.name == "hashlib" for a in n.names) for n in imports
    )
    found = [
        f"reads _api_key at line {n.lineno}" for n in ast.walk(tree) if getattr(n, "attr", None) == "_api_key"
    ]
    if hashes and "api_key" in names:
        found.append("hashes and names api_key (a second account identity?)")
    return found


def test_nothing_outside_the_client_reads_or_hashes_the_key() -> None:
    offenders = {
        str(p.relative_to(REPO_ROOT)): found
        for p in _pack_modules()
        if not p.relative_to(REPO_ROOT).is_relative_to(KEY_OWNER) and (found := _key_readings(p))
    }
    assert offenders == {}


def test_the_check_sees_a_second_identity(tmp_path: Path) -> None:
    """The structural check can fail: the client cache's old fingerprint is caught."""
    old = tmp_path / "runtime.py"
    old.write_text("import hashlib\nfingerprint = hashlib.sha256(settings.api_key.encode()).hexdigest()\n")
    peek = tmp_path / "peek.py"
    peek.write_text("tag = client._api_key\n")
    assert _key_readings(old) and _key_readings(peek)


def test_journal_scheduler_poller_and_client_cache_agree_on_one_account(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, api_key: str
) -> None:
    async def one_task() -> str:
        task, rid = await generate("one account", seed=5)
        await poll(task)
        return str(rid)

    rid = asyncio.run(one_task())
    limits = _mod(pack, "wavespeed.tasks.accounts")
    client = nodes_client(pack)
    tag = client.account_tag
    scheduler_for = _mod(pack, "wavespeed.limits.scheduler").scheduler_for
    poller_module = _mod(pack, "wavespeed.limits.poller")

    def no_new_poller() -> object:
        raise AssertionError("the nodes' poller is not registered under client.account_tag")

    assert tag in _mod(pack, "wavespeed.limits.scheduler")._schedulers  # made by the nodes' submit
    record = pack.wavespeed.tasks.journals.current_journal().get(rid)
    assert record is not None and record.account == tag  # the journal's row
    assert scheduler_for(tag) is limits.scheduler(client)  # the submit scheduler
    assert poller_module.poller_for(tag, no_new_poller) is limits.poller(client)  # the nodes' poller
    assert poller_module.account_poller(client) is limits.poller(client)  # scripts' wait_for
    assert list(limits._clients) == [tag]  # the client cache
    account_tag_for = _mod(pack, "wavespeed.net.api_session").account_tag_for
    assert account_tag_for(pack_env.base_url + "/", api_key) == tag  # normalised like the client


def test_the_tag_of_a_key_is_the_one_journalled_before(pack: ModuleType) -> None:
    """Moving the tag into the client kept its salt and formula: rows journalled by earlier versions
    (task_records.account_tag) still match their account, so their results are still reused."""
    account_tag_for = _mod(pack, "wavespeed.net.api_session").account_tag_for
    assert account_tag_for("https://api.wavespeed.ai", "key-for-a-pinned-tag") == "5c324c64410e2ed8"
