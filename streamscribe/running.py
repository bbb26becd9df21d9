"""Where a running ``streamscribe up`` says it is, so that ``status`` finds its Redis alone.

``up`` writes ``up-PORT.json`` (its pid, page URL and private Redis URL) into the user's
runtime directory while it runs and removes it when it stops; a file whose process is gone
is ignored (and removed).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class RunningUp:
    pid: int
    url: str
    redis_url: str


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"streamscribe-{os.getuid()}"


def announce(port: int, up: RunningUp, *, directory: Path | None = None) -> Path:
    folder = directory or runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"up-{port}.json"
    path.write_text(json.dumps(asdict(up)), encoding="utf-8")
    return path


def running(*, directory: Path | None = None) -> list[RunningUp]:
    """The ``up`` processes alive on this machine, by the files they wrote."""
    folder = directory or runtime_dir()
    found = []
    for path in sorted(folder.glob("up-*.json")):
        try:
            up = RunningUp(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if psutil.pid_exists(up.pid):
            found.append(up)
        else:
            path.unlink(missing_ok=True)  # left by an up that was killed
    return found
