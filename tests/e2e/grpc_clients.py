"""The gRPC API's test client: modules generated from the .proto, and a script run with
only those (``tests/grpc_client/stream_file.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
PROTO = ROOT / "proto" / "streamscribe" / "v1" / "transcription.proto"
CLIENT = ROOT / "tests" / "grpc_client" / "stream_file.py"


def generate_client(out: Path) -> Path:
    """Python modules for the API, generated from the .proto into ``out``."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (out / "transcription_pb2_grpc.py").exists()
    return out


def client_command(generated: Path, address: str, *args: str) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, str(CLIENT), address, *args], {
        **os.environ,
        "PYTHONPATH": str(generated),
    }


def run_client(generated: Path, address: str, *args: str) -> list[dict[str, Any]]:
    """What the generated client printed: each response, then the call's status."""
    command, env = client_command(generated, address, *args)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
