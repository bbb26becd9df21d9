"""The generated gRPC messages are what the .proto in the repository says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.grpc_api import transcription_pb2 as pb

ROOT = Path(__file__).parents[2]
PROTO = ROOT / "proto" / "streamscribe" / "v1" / "transcription.proto"
GENERATED = ROOT / "shared" / "grpc_api"


def test_the_generated_modules_match_the_proto(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(PROTO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    for name in ("transcription_pb2.py", "transcription_pb2.pyi"):
        assert (tmp_path / name).read_text() == (GENERATED / name).read_text(), (
            f"{name} is stale: regenerate it (see shared/grpc_api/__init__.py)"
        )


def test_the_service_has_one_bidirectional_stream() -> None:
    service = pb.DESCRIPTOR.services_by_name["Transcription"]
    assert service.full_name == "streamscribe.v1.Transcription"
    assert [m.name for m in service.methods] == ["Stream"]
    stream = service.methods_by_name["Stream"]
    assert stream.client_streaming and stream.server_streaming
    assert stream.input_type.name == "StreamRequest"
    assert stream.output_type.name == "StreamResponse"
