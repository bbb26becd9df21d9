"""What a deployment is configured by: a ``.env`` file like the seed's, and the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


_DEFAULTS = InfraConfig(host_name="", domain_name="")
"""Where the defaults are written once; ``InfraSettings`` takes them from here."""


class InfraSettings(BaseSettings):
    """The variables of ``.env`` (see ``.env.example``), by their lower-case names."""

    model_config = SettingsConfigDict(extra="ignore")

    host_name: str
    domain_name: str
    model: str = _DEFAULTS.model
    gpu_instance_type: str = _DEFAULTS.gpu_instance_type
    hosted_zone_id: str = _DEFAULTS.hosted_zone_id
    redis_node_type: str = _DEFAULTS.redis_node_type
    ingest_min: int = _DEFAULTS.ingest.minimum
    ingest_max: int = _DEFAULTS.ingest.maximum
    segmenter_min: int = _DEFAULTS.segmenter.minimum
    segmenter_max: int = _DEFAULTS.segmenter.maximum
    transcriber_min: int = _DEFAULTS.transcriber.minimum
    transcriber_max: int = _DEFAULTS.transcriber.maximum
    translator_enabled: bool = _DEFAULTS.translator_enabled
    bedrock_model_id: str = _DEFAULTS.bedrock_model_id
    backlog_per_transcriber: float = _DEFAULTS.backlog_per_transcriber
    sessions_per_segmenter: float = _DEFAULTS.sessions_per_segmenter

    @field_validator("host_name", "domain_name")
    @classmethod
    def _lower(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if not value:
            raise ValueError("must be set (in .env or the environment)")
        return value

    @field_validator("host_name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS label")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment comes in as init values (load_config's ``environ``), over the file
        return (init_settings, dotenv_settings)


def load_config(
    env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> InfraConfig:
    """Values from ``env_file`` (default ``.env`` beside the repository), overridden by the
    environment; a missing or bad value is a :class:`ConfigError` naming it."""
    path = Path(env_file) if env_file else Path(__file__).parents[1] / ".env"
    environ = os.environ if environ is None else environ
    given: dict[str, Any] = {
        name.lower(): value
        for name, value in environ.items()
        if name.lower() in InfraSettings.model_fields
    }
    given["_env_file"] = path if path.is_file() else None
    try:
        settings = InfraSettings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return InfraConfig(
        host_name=settings.host_name,
        domain_name=settings.domain_name,
        model=settings.model,
        gpu_instance_type=settings.gpu_instance_type,
        hosted_zone_id=settings.hosted_zone_id,
        redis_node_type=settings.redis_node_type,
        ingest=ServiceCounts(settings.ingest_min, settings.ingest_max),
        segmenter=ServiceCounts(settings.segmenter_min, settings.segmenter_max),
        transcriber=ServiceCounts(settings.transcriber_min, settings.transcriber_max),
        translator_enabled=settings.translator_enabled,
        bedrock_model_id=settings.bedrock_model_id,
        backlog_per_transcriber=settings.backlog_per_transcriber,
        sessions_per_segmenter=settings.sessions_per_segmenter,
    )


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper()
        if error["type"] == "missing":
            problems.append(f"{name} must be set (in .env or the environment)")
        elif error["type"] in ("int_parsing", "float_parsing", "bool_parsing"):
            kind = "true or false" if error["type"] == "bool_parsing" else "a number"
            problems.append(f"{name} must be {kind}, not {error['input']!r}")
        else:
            problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
