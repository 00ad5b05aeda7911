"""wavespeed/settings/config.py: where the key and base URL come from, and which base URLs are refused.

Every test isolates itself: HOME points at tmp_path (so a developer's real
~/.config/wavespeed/api_key can never be read) and the WAVESPEED_* variables are cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient
from wavespeed_kontext_pack.wavespeed.settings.config import (
    DEFAULT_BASE_URL,
    MISSING_KEY_HELP,
    check_base_url,
    load_settings,
    resolve_api_key,
    resolve_base_url,
)

from emulator import Emulator


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("WAVESPEED_API_KEY", "WAVESPEED_BASE_URL", "WAVESPEED_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture
def config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str | bytes], Path]:
    """Write the key file that WAVESPEED_CONFIG_FILE names (text as UTF-8, bytes as they are)."""

    def write(content: str | bytes) -> Path:
        path = tmp_path / "key"
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(path))
        return path

    return write


def home_key_file(home: Path, text: str) -> Path:
    path = home / ".config" / "wavespeed" / "api_key"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_missing_key(call: Callable[[], object]) -> None:
    """``call`` fails with the one-line help that says where to put the key."""
    with pytest.raises(E.ConfigError) as info:
        call()
    text = str(info.value)
    assert text == MISSING_KEY_HELP
    assert "\n" not in text and "WAVESPEED_API_KEY" in text and "~/.config/wavespeed/api_key" in text


# ============================================================================ the key


def test_env_var_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "  env-key-123456  ")
    assert resolve_api_key() == "env-key-123456"


def test_env_var_wins_over_every_key_file(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    clean_env: Path,
    config_file: Callable[[str | bytes], Path],
) -> None:
    config_file("file-key-aaaa\n")
    home_key_file(clean_env, "home-key-bbbb\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("extra-key-cccc\n")
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-dddd")
    assert resolve_api_key(extra_files=[extra]) == "env-key-dddd"
    assert load_settings(extra_files=[extra]).api_key == "env-key-dddd"


def test_config_file_env_var_is_the_first_fallback(
    clean_env: Path, config_file: Callable[[str | bytes], Path]
) -> None:
    config_file("file-key-aaaa\n")
    home_key_file(clean_env, "home-key-bbbb\n")
    assert resolve_api_key() == "file-key-aaaa"


def test_home_key_file_is_the_second_fallback(clean_env: Path, tmp_path: Path) -> None:
    home_key_file(clean_env, "home-key-bbbb\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("extra-key-cccc\n")
    assert resolve_api_key(extra_files=[extra]) == "home-key-bbbb"


def test_extra_files_are_the_last_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    extra = tmp_path / "extra.txt"
    extra.write_text("extra-key-cccc\n")
    assert resolve_api_key(extra_files=[missing, extra]) == "extra-key-cccc"


def test_config_file_path_expands_tilde(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    (clean_env / "k.txt").write_text("tilde-key-eeee")
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", "~/k.txt")
    assert resolve_api_key() == "tilde-key-eeee"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bare-key-1111\n", "bare-key-1111"),
        ("# my WaveSpeed key\n\n   \nbare-key-2222\nsecond-line-ignored\n", "bare-key-2222"),
        ("WAVESPEED_API_KEY=assign-key-3333\n", "assign-key-3333"),
        ("# comment\nWAVESPEED_API_KEY = spaced-key-4444 \n", "spaced-key-4444"),
        ('WAVESPEED_API_KEY="quoted-key-5555"\n', "quoted-key-5555"),
        ("WAVESPEED_API_KEY='single-key-6666'\r\n", "single-key-6666"),
    ],
    ids=[
        "bare",
        "comments-and-blank-lines",
        "assignment",
        "spaced-assignment",
        "double-quoted",
        "single-quoted-crlf",
    ],
)
def test_key_file_formats(text: str, expected: str, config_file: Callable[[str | bytes], Path]) -> None:
    config_file(text)
    assert resolve_api_key() == expected


def test_key_file_with_a_utf8_bom(config_file: Callable[[str | bytes], Path]) -> None:
    # regression: Notepad BOM stuck to the key
    config_file("\ufeffbom-key-7777\r\n".encode())  # bare form: the BOM sticks to the key
    key = resolve_api_key()
    assert key == "bom-key-7777"


def test_unsendable_key_is_a_config_error(emulator: Emulator) -> None:
    with (
        pytest.raises(E.WaveSpeedError) as info,
        WaveSpeedClient("\ufeffbom-key-7777", emulator.base_url) as c,
    ):
        c.balance()
    assert isinstance(info.value, E.ConfigError) and "WAVESPEED_API_KEY" in str(info.value)


@pytest.mark.parametrize(
    "placeholder", ["your-api-key", "YOUR_API_KEY", "changeme", "xxx", "None", "null", "<your key>"]
)
def test_placeholder_in_env_is_refused(monkeypatch: pytest.MonkeyPatch, placeholder: str) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", placeholder)
    assert_missing_key(resolve_api_key)


def test_placeholder_in_env_falls_through_to_a_real_key_file(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "your-api-key")
    home_key_file(clean_env, "real-key-8888\n")
    assert resolve_api_key() == "real-key-8888"


def test_placeholder_in_key_file_is_refused(config_file: Callable[[str | bytes], Path]) -> None:
    config_file("# paste your key below\nWAVESPEED_API_KEY=your-api-key\n")
    assert_missing_key(resolve_api_key)


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", "WAVESPEED_API_KEY=\n"])
def test_empty_key_file_is_missing(content: str, config_file: Callable[[str | bytes], Path]) -> None:
    config_file(content)
    assert_missing_key(resolve_api_key)


def test_missing_key_everywhere_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "does-not-exist"))
    assert_missing_key(load_settings)
    assert_missing_key(WaveSpeedClient.from_env)


def test_unreadable_key_file_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "key"
    cfg.write_bytes(b"\xff\xfe\x00not utf-8\xff")
    extra = tmp_path / "extra"
    extra.write_text("fallback-key-9999")
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(cfg))
    assert resolve_api_key(extra_files=[extra]) == "fallback-key-9999"
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path))  # a directory
    assert resolve_api_key(extra_files=[extra]) == "fallback-key-9999"


def test_explicit_env_mapping_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "process-key-0000")
    assert resolve_api_key({"WAVESPEED_API_KEY": "mapping-key-1111"}) == "mapping-key-1111"
    with pytest.raises(E.ConfigError):
        resolve_api_key({})


def test_client_without_a_key_is_a_config_error() -> None:
    with pytest.raises(E.ConfigError) as info:
        WaveSpeedClient("")
    assert "WAVESPEED_API_KEY" in str(info.value) and "\n" not in str(info.value)


# ============================================================================ the base URL


def _refusal(url: str) -> str:
    """check_base_url's refusal of ``url``: a ConfigError of one line; its text."""
    with pytest.raises(E.ConfigError) as info:
        check_base_url(url)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_default_base_url_is_https(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url() == DEFAULT_BASE_URL == "https://api.wavespeed.ai"
    monkeypatch.setenv("WAVESPEED_BASE_URL", "")
    assert resolve_base_url() == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123",
        "http://127.0.0.1",
        "http://127.5.6.7:9000",
        "http://localhost:8000",
        "http://LOCALHOST:8000",
        "http://[::1]:8000",
        "http://[::1]",
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert check_base_url(url + "/") == url.lower()  # the host is normalised to lower case


@pytest.mark.parametrize(
    "url",
    [
        "https://api.wavespeed.ai",
        "https://example.com:8443/prefix",
        "https://10.0.0.5",
        "https://[2001:db8::1]:443",
        "https://localhost",
    ],
)
def test_https_is_allowed_anywhere(url: str) -> None:
    assert check_base_url(f"  {url}/ ") == url.removesuffix(":443")  # the default port is implied


@pytest.mark.parametrize(
    "url",
    [
        "http://api.wavespeed.ai",
        "http://10.0.0.5:8000",
        "http://192.168.1.10",
        "http://0.0.0.0:8000",
        "http://[2001:db8::1]:80",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://127.0.0.1@evil.example",
        "http://evil.example#@127.0.0.1",
    ],
)
def test_plain_http_to_a_network_host_is_refused(url: str) -> None:
    text = _refusal(url)
    assert "https" in text and ("Refusing" in text or "refused" in text)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api.wavespeed.ai",
        "not a url",
        "ftp://api.wavespeed.ai",
        "https://",
        "file:///etc/passwd",
        "//host",
    ],
)
def test_garbage_base_url_is_refused(url: str) -> None:
    text = _refusal(url)
    assert "WAVESPEED_BASE_URL" in text and DEFAULT_BASE_URL in text


def test_base_url_from_env_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "env-key-123456")
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://api.example.com")
    with pytest.raises(E.ConfigError):
        load_settings()
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://127.0.0.1:9/")
    assert load_settings().base_url == "http://127.0.0.1:9"


def test_client_refuses_an_insecure_base_url() -> None:
    with pytest.raises(E.ConfigError):
        WaveSpeedClient("some-key-123456", "http://api.wavespeed.ai")


def test_from_env_reaches_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    api_key: str,
    config_file: Callable[[str | bytes], Path],
) -> None:
    config_file(f"# emulator key\nWAVESPEED_API_KEY={api_key}\n")
    monkeypatch.setenv("WAVESPEED_BASE_URL", emulator.base_url + "/")
    with WaveSpeedClient.from_env() as client:
        assert client.base_url == emulator.base_url
        assert client.balance() == pytest.approx(100.0)
    assert [r.authorization for r in emulator.requests] == [True]
