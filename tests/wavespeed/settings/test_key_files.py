"""Issue 11, class 8 (key half): key files are read as written and warned about when shared, and a
server echoing the key URL-encoded cannot leak it through an error or a log line."""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.config import resolve_api_key

from emulator import Emulator
from tests.support.key_pieces import CASE_1_KEY, leaks

ODD_KEY = "ws+k3y/with=odd&chars%2F=="


def key_from(tmp_path: Path, content: str, mode: int = 0o600) -> str:
    path = tmp_path / "api_key"
    path.write_text(content)
    os.chmod(path, mode)
    return resolve_api_key({"WAVESPEED_CONFIG_FILE": str(path), "HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("QUJDREVGR0hJSktMTU5PUA==\n", "QUJDREVGR0hJSktMTU5PUA=="),
        ("QUJDREVGR0hJSktMTU5PUEE=\n", "QUJDREVGR0hJSktMTU5PUEE="),
        ("WAVESPEED_API_KEY=QUJDRA==\n", "QUJDRA=="),
        ("export WAVESPEED_API_KEY='abc123='\n", "abc123="),
        ("# comment\n  abc-def_123  \n", "abc-def_123"),
    ],
)
def test_key_file_lines(tmp_path: Path, content: str, key: str) -> None:
    assert key_from(tmp_path, content) == key


def test_a_shared_key_file_gets_one_chmod_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wavespeed")
    path = tmp_path / "api_key"
    for _ in range(3):
        key_from(tmp_path, "shared-key-0123\n", mode=0o644)
    warnings = [r.getMessage() for r in caplog.records if "chmod" in r.getMessage()]
    assert warnings == [f"WaveSpeed key file {path} is readable by other users: run chmod 600 {path}"]
    assert "shared-key-0123" not in warnings[0]


def test_a_private_key_file_gets_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wavespeed")
    key_from(tmp_path, "private-key-0123\n", mode=0o600)
    assert not [r for r in caplog.records if "chmod" in r.getMessage()]


@pytest.mark.parametrize("encode", [quote, lambda k: quote(k, safe=""), lambda k: quote_plus(k, safe="")])
def test_url_encoded_key_echoed_by_the_server_is_redacted(
    encode: object, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoed = encode(ODD_KEY)  # type: ignore[operator]
    assert echoed != ODD_KEY
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), echoed)
    for text in (echoed, lower_hex):
        emulator.inject("submit", "status", status=401, message=f"bad key {text}")
        client = WaveSpeedClient(ODD_KEY, emulator.base_url, retry=RetryPolicy(attempts=1))
        with client, pytest.raises(E.AuthenticationError) as info:
            client.submit(KontextRequest(prompt="echo"))
        assert text not in str(info.value) and ODD_KEY not in str(info.value), str(info.value)
        log.warning("server said: %s", f"bad key {text}")
    for record in caplog.records:
        assert echoed not in record.getMessage() and ODD_KEY not in record.getMessage()


log = logging.getLogger("wavespeed")


@pytest.mark.parametrize("echo", ["near the cut", "base64 in Basic", "lower-hex piece"])
def test_a_key_echoed_near_the_cut_or_in_base64_leaves_no_piece_in_the_error_or_log(
    echo: str, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17, case 1, over a real socket: the 300-character cut came before redaction (30 of 32
    characters shown) and a base64 echo was not redacted at all."""
    key = ODD_KEY if echo == "lower-hex piece" else CASE_1_KEY
    caplog.set_level(logging.DEBUG)
    if echo == "near the cut":  # the key straddles the cut at one of these offsets
        messages = [f"{'x' * pad} {key} rejected" for pad in range(200, 300, 4)]
    elif echo == "base64 in Basic":
        messages = [f"bad credentials: Basic {base64.b64encode(f'user:{key}'.encode()).decode()}"]
    else:
        lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(key, safe=""))
        messages = [f"bad key fragment {lower_hex[4:24]}"]
    client = WaveSpeedClient(key, emulator.base_url, retry=RetryPolicy(attempts=1))
    with client:
        for message in messages:
            emulator.inject("submit", "status", status=401, message=message)
            with pytest.raises(E.AuthenticationError) as info:
                client.submit(KontextRequest(prompt="echo"))
            assert leaks(message, key)  # the server really echoed pieces of it
            assert not leaks(str(info.value), key), str(info.value)
            assert not leaks(repr(vars(info.value)), key)
            log.warning("server said: %s", message)
    assert not leaks(caplog.text, key)
