"""What the deployment files must name: real ``streamscribe`` commands and real settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.settings import ENV_PREFIX, Settings
from streamscribe.cli import build_parser

ROOT = Path(__file__).parents[2]
PASSED_THROUGH = {
    "REDIS_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}


def assert_real_command(command: Sequence[str], *, where: str) -> None:
    """``command`` (the arguments after ``streamscribe``) parses as a real subcommand."""
    try:
        build_parser().parse_args(list(command))
    except SystemExit:
        pytest.fail(f"{where}: `streamscribe {' '.join(command)}` is not a command")


def assert_real_settings(environment: Mapping[str, Any], *, where: str) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in environment:
        if name.startswith(ENV_PREFIX):
            assert name.removeprefix(ENV_PREFIX) in fields, f"{where}: {name} is no setting"
        else:
            assert name in PASSED_THROUGH, f"{where}: unexpected variable {name}"
