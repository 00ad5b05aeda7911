"""A throw-away PostgreSQL server for the tests, as a farm has one: Debian's postgresql binaries, a
cluster made in a temp folder, listening on a loopback port only, with a password (so the tests see
what a real ``postgresql://user:password@host:port/db`` URL does), stopped and deleted afterwards.

Never touches a system cluster. The binaries are the newest under /usr/lib/postgresql/*/bin (Debian's
postgresql package, installed by .ci/run), or $PG_BIN. PostgreSQL refuses to run as root: as root the
cluster runs as the ``postgres`` user the package creates. Durability is off (fsync, full pages): these
clusters live for one test session.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.ci import unavailable

USER = "wavespeed"


def pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL binaries (the newest version), or $PG_BIN; None if absent."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One running cluster: ``url(db)`` names a database on it (with the password)."""

    root: Path
    port: int
    password: str
    bin: Path
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PGPASSWORD": self.password},
        )

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user() -> list[str]:
    """The command prefix that runs a PostgreSQL tool as a user it accepts (never root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("PostgreSQL cannot run as root and runuser is missing")
    return [runuser, "-u", "postgres", "--"]


def start_server() -> PostgresServer:
    """initdb + pg_ctl start on a free loopback port; skips (fails under CI) without the binaries."""
    binaries = pg_bin()
    if binaries is None:
        unavailable("no PostgreSQL server binaries (Debian's postgresql package; .ci/run installs it)")
    assert binaries is not None
    as_user = _as_user()
    root = Path(tempfile.mkdtemp(prefix="wsk-pg-"))
    password = secrets.token_hex(12)
    (root / "pwfile").write_text(password + "\n")
    if as_user:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "pwfile", "postgres", "postgres")
    server = PostgresServer(root, _free_port(), password, binaries, as_user)
    server.run(
        "initdb", "-D", str(root / "data"), "-U", USER, f"--pwfile={root / 'pwfile'}",
        "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions",
    )  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off "
        "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
    )
    try:
        server.run("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-o", options, "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text(errors="replace")[-2000:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from None
    return server


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
