"""pyproject.toml as the Comfy Registry reads it (comfy-cli's config parser, docs.comfy.org/registry/
specifications): the fields it requires, in the shapes it accepts. `comfy node validate` passes on it;
this test keeps it so without installing comfy-cli. The publisher id is a placeholder (see the file)."""

from __future__ import annotations

import re
import sys

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
