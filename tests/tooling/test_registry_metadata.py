"""pyproject.toml as the Comfy Registry reads it (comfy-cli's config parser, docs.comfy.org/registry/
specifications): the fields it requires, in the shapes it accepts. `comfy node validate` passes on it;
this test keeps it so without installing comfy-cli. The publisher id is a placeholder (see the file)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from scripts.pack_loader import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (scripts/test.sh --python 3.10): the same parser, from PyPI
    import tomli as tomllib

META = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_project_fields_follow_the_registry_spec() -> None:
    project = META["project"]
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", name)
    assert not re.search(r"[._-]{2}", name)
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert (REPO_ROOT / project["license"]["file"]).is_file()
    assert project["description"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    assert "Issues" in project["urls"]  # the key comfy-cli reads (not "Bug Tracker")
    assert "Operating System :: OS Independent" in project["classifiers"]


def test_runtime_dependencies_match_requirements_txt() -> None:
    """The registry installs from pyproject, a git clone from requirements.txt: the same packages."""
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    reqs = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    deps = {d for d in META["project"]["dependencies"] if not d.startswith("comfyui-frontend-package")}
    assert deps == reqs - {"torch"}  # torch: ComfyUI's own, never pinned or pulled by the registry


def test_tool_comfy_states_publisher_and_supported_versions() -> None:
    comfy = META["tool"]["comfy"]
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"]
    assert comfy["requires-comfyui"] == ">=0.3.75"  # the oldest release CI tests
    assert comfy.get("Icon", "x") != ""  # an empty Icon is not a URL: leave the key out instead
    frontend = [d for d in META["project"]["dependencies"] if d.startswith("comfyui-frontend-package")]
    assert frontend == ["comfyui-frontend-package>=1.32.9"]


# ----------------------------------------------------------------------------- what a published pack ships

NODE_IDS = [
    "FluxKontextMaxGenerate",
    "FluxKontextMaxEdit",
    "FluxKontextMaxMultiReference",
    "FluxKontextMaxBatch",
    "WaveSpeedPollResult",
    "WaveSpeedRecentTasks",
    "WaveSpeedConnectionCheck",
]


def _shipped() -> list[str]:
    """The files `comfy node publish` zips: git-tracked files not matched by .comfyignore (comfy-cli's
    zip_files: pathspec's gitwildmatch over the patterns, comments and blank lines left out)."""
    import subprocess
    import warnings

    import pathspec

    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    lines = (REPO_ROOT / ".comfyignore").read_text(encoding="utf-8").splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    with warnings.catch_warnings():  # pathspec 1.x calls the name comfy-cli uses deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    return [path for path in tracked if not spec.match_file(path)]


def test_the_registry_zip_leaves_out_tests_bench_and_ci_and_keeps_the_pack() -> None:
    shipped = _shipped()
    for folder in ("tests/", "bench/", ".ci/", ".github/", ".hypothesis/"):
        assert not [p for p in shipped if p.startswith(folder)], folder
    for needed in (
        "__init__.py",
        "pyproject.toml",
        "requirements.txt",
        "emulator/__main__.py",
        "web/price.js",
    ):
        assert needed in shipped, needed
    assert any(p.startswith("example_workflows/") and p.endswith(".json") for p in shipped)


def test_the_demo_and_its_emulator_run_from_the_registry_zip(tmp_path: Path) -> None:
    """Only the shipped files, copied into an empty folder: the emulator starts (--help) and the
    demo answers its usage, so nothing they import was left out."""
    import shutil
    import subprocess

    pack = tmp_path / "comfyui-wavespeed-kontext"
    for path in _shipped():
        (pack / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, pack / path)
    emulator = subprocess.run(
        [sys.executable, "-m", "emulator", "--help"], cwd=pack, capture_output=True, text=True, timeout=60
    )
    assert emulator.returncode == 0 and "--api-key" in emulator.stdout, emulator.stderr
    demo = subprocess.run(
        ["bash", "scripts/demo.sh", "--help"], cwd=pack, capture_output=True, text=True, timeout=60
    )
    assert demo.returncode == 0 and "demo" in demo.stdout.lower(), demo.stderr


def test_every_node_has_a_help_page_the_frontend_finds() -> None:
    """Frontends 1.49+ fetch a custom node's help from /extensions/<pack>/docs/<node id>.md: the pack's
    web/ folder (WEB_DIRECTORY) holds one per node, titled with the node's display name."""
    for node in NODE_IDS:
        page = REPO_ROOT / "web" / "docs" / f"{node}.md"
        assert page.is_file(), node
        title = page.read_text(encoding="utf-8").splitlines()[0]
        assert title.startswith("# ") and ("WaveSpeed" in title), (node, title)


def test_the_icon_is_a_small_square_png_in_the_repository() -> None:
    from PIL import Image

    icon = META["tool"]["comfy"]["Icon"]
    repo = META["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repo}/main/"
    assert icon.startswith(prefix), icon
    with Image.open(REPO_ROOT / icon.removeprefix(prefix)) as img:
        assert img.format == "PNG" and img.size[0] == img.size[1] <= 400


def test_a_version_bump_on_main_publishes_and_the_changelog_names_it() -> None:
    workflow = (REPO_ROOT / ".github" / "workflows" / "publish.yml").read_text(encoding="utf-8")
    assert "Comfy-Org/publish-node-action@v1" in workflow
    assert "branches: [main]" in workflow and "paths: [pyproject.toml]" in workflow
    assert "secrets.REGISTRY_ACCESS_TOKEN" in workflow
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {META['project']['version']}\n" in changelog
