"""The parts stay apart: ``shared/`` imports no part, no part imports another; only the
composition root (``streamscribe/``) and ``infra/`` know them all. Checked on the source's
import statements (module level and inside functions), parsed with ``ast``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PARTS = ("ingest", "segmenter", "transcriber", "translator")


def imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of ``package``, the first-party top-level packages it imports."""
    first_party = {*PARTS, "shared", "streamscribe", "infra"}
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = (names & first_party) - {package}
    return found


@pytest.mark.parametrize("package", ["shared", *PARTS])
def test_a_part_imports_only_shared(package: str) -> None:
    crossing = {module: names - {"shared"} for module, names in imported_packages(package).items()}
    assert {module: names for module, names in crossing.items() if names} == {}


def test_the_checker_sees_imports_inside_functions() -> None:
    # streamscribe/parts.py imports each part inside the function that runs it
    assert set(PARTS) <= set().union(*imported_packages("streamscribe").values())


def test_the_client_library_imports_neither_the_command_line_nor_the_benchmarks() -> None:
    """A program that streams with ``streamscribe.client`` loads no benchmark (jiwer, the
    normalizer) and no composition root (the parts and their model)."""
    code = (
        "import json, sys, streamscribe.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('streamscribe', 'jiwer', 'whisper_normalizer', 'faster_whisper', 'ingest'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == ["streamscribe", "streamscribe.client"]
