"""What a deployment is configured by: a ``.env`` file like the seed's, and the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from shared.errors import ConfigError

NAMESPACE = "streamscribe"
"""The CloudWatch namespace the parts publish their scaling metrics in."""


@dataclass(frozen=True, slots=True)
class ServiceCounts:
    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ConfigError(f"bad task counts {self.minimum}..{self.maximum}")


@dataclass(frozen=True, slots=True)
class InfraConfig:
    host_name: str
    domain_name: str
    model: str = "large-v3"
    gpu_instance_type: str = "g4dn.xlarge"
    hosted_zone_id: str = ""
    """Empty: looked up by ``domain_name`` (needs AWS credentials at synth)."""
    redis_node_type: str = "cache.t4g.small"
    ingest: ServiceCounts = ServiceCounts(1, 4)
    segmenter: ServiceCounts = ServiceCounts(1, 4)
    transcriber: ServiceCounts = ServiceCounts(1, 4)
    translator_enabled: bool = False
    bedrock_model_id: str = "amazon.nova-micro-v1:0"
    backlog_per_transcriber: float = 2.0
    """Target of the transcribers' scaling: final jobs waiting per transcriber task."""
    sessions_per_segmenter: float = 200.0
    ingest_cpu_percent: float = 60.0

    @property
    def fqdn(self) -> str:
        return f"{self.host_name}.{self.domain_name}"


_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def load_config(
    env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> InfraConfig:
    """Values from ``env_file`` (default ``.env`` beside the repository), overridden by the
    environment; a missing or bad value is a :class:`ConfigError` naming it."""
    path = Path(env_file) if env_file else Path(__file__).parents[1] / ".env"
    values: dict[str, str] = {
        k: v for k, v in (dotenv_values(path) if path.is_file() else {}).items() if v is not None
    }
    values.update(os.environ if environ is None else environ)

    def need(name: str) -> str:
        value = values.get(name, "").strip()
        if not value:
            raise ConfigError(f"{name} must be set (in .env or the environment)")
        return value

    def number(name: str, default: float) -> float:
        try:
            return float(values.get(name, default))
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {values[name]!r}") from None

    def counts(prefix: str, minimum: int, maximum: int) -> ServiceCounts:
        return ServiceCounts(
            int(number(f"{prefix}_MIN", minimum)), int(number(f"{prefix}_MAX", maximum))
        )

    host = need("HOST_NAME").lower()
    if not _NAME.match(host):
        raise ConfigError(f"HOST_NAME {host!r} is not a DNS label")
    return InfraConfig(
        host_name=host,
        domain_name=need("DOMAIN_NAME").lower().rstrip("."),
        model=values.get("MODEL", "large-v3"),
        gpu_instance_type=values.get("GPU_INSTANCE_TYPE", "g4dn.xlarge"),
        hosted_zone_id=values.get("HOSTED_ZONE_ID", ""),
        redis_node_type=values.get("REDIS_NODE_TYPE", "cache.t4g.small"),
        ingest=counts("INGEST", 1, 4),
        segmenter=counts("SEGMENTER", 1, 4),
        transcriber=counts("TRANSCRIBER", 1, 4),
        translator_enabled=values.get("TRANSLATOR_ENABLED", "false").lower()
        in ("1", "true", "yes"),
        bedrock_model_id=values.get("BEDROCK_MODEL_ID", "amazon.nova-micro-v1:0"),
        backlog_per_transcriber=number("BACKLOG_PER_TRANSCRIBER", 2.0),
        sessions_per_segmenter=number("SESSIONS_PER_SEGMENTER", 200.0),
    )
