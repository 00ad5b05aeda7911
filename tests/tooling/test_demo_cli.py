"""A newcomer's first commands (issue 13 item 5): demo.sh's usage and a wrong file answer at once,
before the minutes-long bootstrap, in one line that names the file; no doubled `error:`; the harness
picks the frontend each ComfyUI release was made with. No ComfyUI is started here."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import comfy_server
from scripts.comfy_harness import PromptResult, comfy_version, frontend_root
from scripts.pack_loader import REPO_ROOT
from scripts.run_workflow import WorkflowFileError, failure_line, read_workflow


@pytest.fixture
def demo_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repo's scripts whose bootstrap.sh only leaves a marker: proves it never ran."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "example_workflows", repo / "example_workflows")
    marker = tmp_path / "bootstrap-ran"
    (repo / "scripts" / "bootstrap.sh").write_text(f"touch {marker}\nexit 1\n", encoding="utf-8")
    (repo / "README.md").write_text("# not a workflow\n", encoding="utf-8")
    return repo, marker


def _demo(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(repo)}
    return subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_help_prints_usage_before_any_bootstrap(demo_copy: tuple[Path, Path]) -> None:
    repo, marker = demo_copy
    run = _demo(repo, "--help")
    assert run.returncode == 0, run.stderr
    assert not marker.exists(), "demo.sh --help ran the bootstrap"
    text = run.stdout
    for needed in ("demo.sh", "WAVESPEED_API_KEY", "COMFYUI_DIR", "--out", "$0.08 per image", "MONEY"):
        assert needed in text, needed
    assert "run_workflow.py" not in text


def test_demo_with_a_non_workflow_file_fails_fast_in_one_line(demo_copy: tuple[Path, Path]) -> None:
    repo, marker = demo_copy
    run = _demo(repo, "README.md")
    assert run.returncode == 1
    assert not marker.exists(), "demo.sh started the bootstrap for a file it cannot run"
    lines = run.stderr.strip().splitlines()
    assert lines == ["demo: error: README.md: not a workflow (not JSON: Expecting value at line 1)"], lines


def test_demo_with_a_missing_file_names_it(demo_copy: tuple[Path, Path]) -> None:
    repo, marker = demo_copy
    run = _demo(repo, "nope.json")
    assert run.returncode == 1 and not marker.exists()
    assert run.stderr.startswith("demo: error: nope.json: no such file")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe\x00", "not a UTF-8 text file"),
        (b'{"a": 1}', "neither a saved UI workflow"),
        (b"[1, 2]", "neither a saved UI workflow"),
    ],
)
def test_read_workflow_names_the_file_and_why(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "thing.json"
    path.write_bytes(content)
    with pytest.raises(WorkflowFileError, match=rf"^{path}: not a workflow \(.*{why}"):
        read_workflow(path)


def test_read_workflow_accepts_ui_and_api_format(tmp_path: Path) -> None:
    ui = REPO_ROOT / "example_workflows" / "Text to image - Kontext [max].json"
    assert read_workflow(ui)[1] is True
    api = tmp_path / "api.json"
    api.write_text('{"1": {"class_type": "EmptyImage", "inputs": {}}}', encoding="utf-8")
    assert read_workflow(api) == ({"1": {"class_type": "EmptyImage", "inputs": {}}}, False)


def test_failure_line_has_no_doubled_error_prefix() -> None:
    failed = PromptResult(
        "p1",
        "error",
        {"node_id": "1", "node_type": "FluxKontextMaxGenerate", "exception_message": "bad key"},
        {},
        [],
        [],
        0.1,
    )
    line = failure_line(Path("wf.json"), failed)
    assert line == "wf.json failed: node 1 (FluxKontextMaxGenerate): bad key"
    assert "error" not in line.lower()


def _tree(root: Path, version: str, frontend: str) -> Path:
    root.mkdir(parents=True)
    (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n', encoding="utf-8")
    (root / "requirements.txt").write_text(f"comfyui-frontend-package=={frontend}\ntorch\n", encoding="utf-8")
    return root


def test_frontend_root_serves_an_older_release_its_own_frontend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comfy_server, "COMFY_CACHE", tmp_path / "cache")
    old = _tree(tmp_path / "old", "0.3.75", "1.32.9")
    assert comfy_version(old) == "0.3.75"
    assert frontend_root(old) is None  # not unpacked: the installed frontend serves it
    fe = tmp_path / "cache" / "frontend-1.32.9"
    fe.mkdir(parents=True)
    (fe / "index.html").write_text("<html></html>", encoding="utf-8")
    assert frontend_root(old) == fe
    installed = importlib.metadata.version("comfyui-frontend-package")
    assert frontend_root(_tree(tmp_path / "new", "0.33.0", installed)) is None
    assert comfy_version(tmp_path) == ""
