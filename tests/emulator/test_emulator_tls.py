"""The emulator over https, as the API is served: from Python (``tls=``) and from the command line
(``--tls-cert/--tls-key``), with a CA made at test time (trustme); nothing is committed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from emulator import Emulator
from scripts.pack_loader import REPO_ROOT
from tests.support.proxy_tls import TestCA, https_base

KEY = "tls-key-Hv6Jd2Pq8Lw4"
MODEL = "wavespeed-ai/flux-kontext-max/text-to-image"


def test_outputs_of_an_https_emulator_are_https_and_verified_by_its_ca(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    with Emulator(api_keys=(KEY,), inference_s=0.05, tls=ca.server_context()) as emu:
        assert emu.base_url.startswith("https://127.0.0.1:")
        base = https_base(emu)
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca.bundle)
        session.headers["Authorization"] = f"Bearer {KEY}"
        created = session.post(f"{base}/api/v3/{MODEL}", json={"prompt": "p"}, timeout=5)
        task = created.json()["data"]["id"]
        time.sleep(0.2)  # the task takes 0.05 s; checks of it keep the published 2 s pace
        for _ in range(10):
            data = session.get(f"{base}/api/v3/predictions/{task}/result", timeout=5).json()["data"]
            if data["status"] == "completed":
                break
            time.sleep(2.1)
        assert data["outputs"][0].startswith(f"{base}/")
        assert session.get(data["outputs"][0], timeout=5).status_code == 200


def test_a_client_that_never_handshakes_blocks_nobody(tmp_path: Path) -> None:
    """The handshake runs in the connection's own thread: a silent TCP client does not hold the
    accept loop, so the next client is served."""
    ca = TestCA(tmp_path)
    with (
        Emulator(api_keys=(KEY,), tls=ca.server_context()) as emu,
        socket.create_connection(("127.0.0.1", emu.port), timeout=5),
    ):
        reply = requests.get(
            f"{https_base(emu)}/api/v3/balance",
            headers={"Authorization": f"Bearer {KEY}"},
            verify=str(ca.bundle),
            timeout=10,
        )
        assert reply.status_code == 200


def test_the_command_line_serves_https(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    ca.cert.cert_chain_pems[0].write_to_path(str(cert))
    ca.cert.private_key_pem.write_to_path(str(key))
    command = [sys.executable, "-m", "emulator", "--port", "0", "--api-key", KEY]
    command += ["--tls-cert", str(cert), "--tls-key", str(key)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base = line.split(" listening on ")[1].split()[0].replace("127.0.0.1", "localhost")
        assert base.startswith("https://")
        reply = requests.get(
            f"{base}/api/v3/balance",
            headers={"Authorization": f"Bearer {KEY}"},
            verify=str(ca.bundle),
            timeout=10,
        )
        assert reply.json()["data"]["balance"] == 100.0
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_command_line_wants_both_tls_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "--tls-cert", "x.pem"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr
