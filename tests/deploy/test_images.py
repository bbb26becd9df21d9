"""The Dockerfiles: linted by hadolint, and everything they call or copy exists.

No Docker engine runs here; what the images' build stage does without one is done for real:
the wheel is built from the same sources and the model step runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy.checks import ROOT, assert_real_command

DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]


def instructions(name: str) -> list[tuple[str, str]]:
    text = (ROOT / name).read_text().replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(name: str) -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run(
        [binary, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_are_multi_stage_non_root_and_call_real_commands(name: str) -> None:
    steps = instructions(name)
    assert sum(keyword == "FROM" for keyword, _ in steps) == 2
    assert ("USER", "10001") in steps
    [entrypoint] = [json.loads(rest) for keyword, rest in steps if keyword == "ENTRYPOINT"]
    [command] = [json.loads(rest) for keyword, rest in steps if keyword == "CMD"]
    assert entrypoint == ["streamscribe"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "streamscribe" in scripts
    assert_real_command(command, where=f"{name} CMD")
    for keyword, rest in steps:
        for called in re.finditer(r"&& streamscribe ([a-z-]+)", rest if keyword == "RUN" else ""):
            assert_real_command([called.group(1), "x"], where=f"{name} RUN")
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"{name}: COPY {source} is missing"


def test_the_gpu_image_has_cuda_and_cudnn() -> None:
    [base] = [
        rest
        for keyword, rest in instructions("Dockerfile.gpu")
        if keyword == "ARG" and rest.startswith("CUDA_IMAGE=")
    ]
    assert re.fullmatch(r"CUDA_IMAGE=nvidia/cuda:12\.[0-9.]+-cudnn-runtime-ubuntu[0-9.]+", base)


def test_the_build_stage_works_here(tmp_path: Path) -> None:
    """What the images' build stage runs: the wheel from the copied sources, and the model
    step, which for the default model is offline."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("streamscribe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "ingest/server.py",
        "segmenter/worker.py",
        "transcriber/worker.py",
        "translator/worker.py",
        "shared/schema.py",
        "streamscribe/cli.py",
        "ingest/static/index.html",
    ):
        assert module in names, module
    model = subprocess.run(
        [sys.executable, "-m", "streamscribe", "fetch-model", "tiny.en"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert model.returncode == 0 and Path(model.stdout.strip(), "model.bin").is_file()
    none = subprocess.run(
        [sys.executable, "-m", "streamscribe", "fetch-model", "none"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert none.returncode == 0 and none.stdout.startswith("none")


def test_installs_take_the_locked_versions() -> None:
    """constraints.txt pins every package the tests passed with, each dependency of
    pyproject.toml among them; ./dev and both images install with it."""
    pinned = {
        line.split("==", 1)[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for requirement in declared:
        name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in constraints.txt"
    assert '-c constraints.txt -e ".[dev]"' in (ROOT / "dev").read_text()
    for name in ("Dockerfile", "Dockerfile.gpu"):
        runs = [rest for keyword, rest in instructions(name) if keyword == "RUN"]
        assert any("pip install -c constraints.txt ." in run for run in runs), name
