"""compose.yaml and compose.gpu.yaml, checked by a real Compose implementation and against
the package: every command a real entry point, every setting a real one."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import yaml

from tests.deploy.checks import ROOT, assert_real_command, assert_real_settings

SECRET = "compose-test-secret-of-enough-length-0123"


def compose(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: ./dev test installs it (apt docker-compose)"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODEL", "AWS_REGION", "STREAMSCRIBE_TOKEN_SECRET")
    }
    clean["STREAMSCRIBE_TOKEN_SECRET"] = SECRET
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        check=False,
    )


def resolved(*args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    done = compose(*args, "config", env=env)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


def test_the_default_stack_is_valid_and_waits_for_a_healthy_redis() -> None:
    config = resolved("-f", "compose.yaml")
    services = config["services"]
    started = sorted(name for name, service in services.items() if not service.get("profiles"))
    assert started == ["ingest", "redis", "segmenter", "transcriber"]
    assert services["translator"]["profiles"] == ["translator"]  # only when asked for
    assert "healthcheck" in services["redis"]
    for name in ("ingest", "segmenter", "transcriber"):
        service = services[name]
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert_real_command(service["command"], where=name)
        assert_real_settings(service["environment"], where=name)
    assert services["ingest"]["ports"][0]["published"] in (8080, "8080")
    grpc = services["ingest"]["ports"][1]
    assert (str(grpc["published"]), grpc["target"]) == ("8081", 8081)
    assert services["ingest"]["environment"]["STREAMSCRIBE_GRPC_PORT"] == "8081"
    assert services["ingest"]["environment"]["STREAMSCRIBE_TOKEN_SECRET"] == SECRET
    assert "ports" not in services["transcriber"]  # so --scale transcriber=N just works
    assert "container_name" not in services["transcriber"]


def test_the_translator_profile_adds_a_translator_with_aws_settings() -> None:
    config = resolved(
        "-f", "compose.yaml", "--profile", "translator", env={"AWS_REGION": "eu-west-2"}
    )
    translator = config["services"]["translator"]
    assert_real_command(translator["command"], where="translator")
    assert_real_settings(translator["environment"], where="translator")
    assert translator["environment"]["STREAMSCRIBE_BEDROCK_REGION"] == "eu-west-2"


def test_the_gpu_override_reserves_a_gpu_and_requires_a_model() -> None:
    config = resolved("-f", "compose.yaml", "-f", "compose.gpu.yaml", env={"MODEL": "large-v3"})
    transcriber = config["services"]["transcriber"]
    assert transcriber["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert transcriber["build"]["dockerfile"] == "Dockerfile.gpu"
    assert transcriber["environment"]["STREAMSCRIBE_MODEL"] == "large-v3"
    assert_real_settings(transcriber["environment"], where="gpu transcriber")
    missing = compose("-f", "compose.yaml", "-f", "compose.gpu.yaml", "config")
    assert missing.returncode != 0
    assert "set MODEL to the Whisper model for the GPU" in missing.stderr


def test_ingest_will_not_start_without_a_token_secret() -> None:
    done = compose("-f", "compose.yaml", "config", env={"STREAMSCRIBE_TOKEN_SECRET": ""})
    assert done.returncode != 0
    assert "set STREAMSCRIBE_TOKEN_SECRET" in done.stderr
