"""A real proxy and real TLS for the network tests: Debian's tinyproxy run from a config the test
writes, and a test CA made at test time with trustme (nothing committed), serving the emulator
over https. Everything listens on loopback; the proxy connects out from 127.0.0.2, so the emulator's
``peer`` of a request tells whether it came through the proxy (127.0.0.2) or directly (127.0.0.1)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from emulator import Emulator
from tests.support.ci import unavailable

PROXY_OUT_ADDRESS = "127.0.0.2"
"""The address tinyproxy connects out from (``Bind``): a request the emulator sees from it came
through the proxy."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestCA:
    """A throwaway CA (trustme) and a server certificate it signed for localhost and 127.0.0.1."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        try:
            import trustme
        except ImportError:
            unavailable("trustme is not installed (requirements-dev.txt)")
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.bundle = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.bundle))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        return context


@contextlib.contextmanager
def tls_emulator(ca: TestCA, api_key: str, **kw: object) -> Iterator[Emulator]:
    """The emulator over https with ``ca``'s certificate, on a free loopback port."""
    with Emulator(api_keys=(api_key,), tls=ca.server_context(), **kw) as emu:  # type: ignore[arg-type]
        yield emu


def https_base(emu: Emulator) -> str:
    """The emulator's base URL by host name (the name its certificate is for)."""
    return emu.base_url.replace("127.0.0.1", "localhost")


class Tinyproxy:
    """Debian's tinyproxy in the foreground on a free loopback port, logging every connection; it
    tunnels to localhost and 127.0.0.1 only (a filter denies every other host).

    ``connect_ports``: the only ports a CONNECT may reach (tinyproxy answers 403 to others);
    ``login``: ``(user, password)`` the proxy demands (407 without); ``port``: a fixed port (a
    proxy restarted with other rules where a running program already points).
    """

    def __init__(
        self,
        directory: Path,
        *,
        connect_ports: tuple[int, ...] = (),
        login: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        binary = shutil.which("tinyproxy")
        if binary is None:
            unavailable("tinyproxy is not installed (.ci/run installs Debian's tinyproxy)")
        self.port = port or free_port()
        self.log_path = directory / "tinyproxy.log"
        only_loopback = directory / "tinyproxy.filter"  # it never connects anywhere else
        only_loopback.write_text("^localhost$\n^127\\.0\\.0\\.1$\n", encoding="utf-8")
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            f"Bind {PROXY_OUT_ADDRESS}",
            "Timeout 60",
            f'LogFile "{self.log_path}"',
            "LogLevel Info",
            "MaxClients 64",
            "Allow 127.0.0.1",
            f'Filter "{only_loopback}"',
            "FilterDefaultDeny Yes",
            "FilterType ere",
            *(f"ConnectPort {port}" for port in connect_ports),
            *([f"BasicAuth {login[0]} {login[1]}"] if login else []),
        ]
        config = directory / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited ({self.process.returncode}): {self.log()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("tinyproxy did not listen within 15 s")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def connects(self) -> list[str]:
        """The host:port of every CONNECT the proxy was asked for, in order."""
        return re.findall(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP", self.log())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
