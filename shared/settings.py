"""Settings, read once from the environment at the edge (``streamscribe.options`` turns them
into the option objects each part owns).

Every variable has the prefix ``STREAMSCRIBE_``; the Redis URL is also read from ``REDIS_URL``.
A bad value stops the process with a :class:`ConfigError` that names the variable.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

ENV_PREFIX = "STREAMSCRIBE_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    redis_url: str = Field(
        default="", validation_alias=AliasChoices("STREAMSCRIBE_REDIS_URL", "REDIS_URL")
    )
    redis_password: SecretStr = SecretStr("")
    """Used when ``REDIS_URL`` has none (e.g. an ElastiCache auth token from a secret)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # ingest
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """The gRPC API's port (HTTP/2, so a port of its own); unset: no gRPC; 0: any free one."""
    max_frame_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    outgoing_queue_messages: int = Field(default=1000, ge=10)
    outgoing_queue_bytes: int = Field(default=4 * 2**20, ge=65536)
    """Characters of messages queued for one client; beyond, it is dropped (1011)."""
    close_timeout_s: float = Field(default=60.0, gt=0)
    max_sessions: int = Field(default=500, ge=1)
    """Connections per ingest node; more are refused with 1013."""
    max_session_s: float = Field(default=14400.0, gt=0)
    idle_timeout_s: float = Field(default=120.0, gt=0)
    max_audio_rate: float = Field(default=2.0, ge=1.0)
    """Seconds of audio accepted per second; faster closes with 4029."""
    audio_burst_s: float = Field(default=10.0, ge=0)
    max_messages_per_s: float = Field(default=20.0, gt=0)
    """Text messages (finalize, keepalive...) accepted per second; faster closes with 4029."""
    message_burst: int = Field(default=100, ge=1)
    max_audio_frames_per_s: float = Field(default=500.0, gt=0)
    """Audio frames (binary frames, Realtime appends, gRPC audio) accepted per second, empty
    ones included; faster closes with 4029."""
    audio_frame_burst: int = Field(default=1000, ge=1)
    max_room_participants: int = Field(default=500, ge=1)
    max_connections: int = Field(default=10000, ge=1)
    """Open connections per ingest node (capped by the process's file limit less 512); more
    are dropped at once."""
    max_connections_per_address: int = Field(default=1000, ge=1)
    """Open connections from one client address per node (a load balancer's node counts as
    one address: raise it there); more are dropped at once."""
    """Live participants a room holds; one more is refused with 1013 (room_full)."""
    resume_window_s: int = Field(default=60, ge=0, le=3600)
    """How long a session whose connection dropped waits for its client to resume; 0: a
    dropped connection ends its session."""
    room_history_entries: int = Field(default=200, ge=0, le=1000)
    """A participant joining a room is sent up to this many of its latest finals, turns and
    translations (0: none)."""
    room_history_s: float = Field(default=3600.0, ge=0, le=24 * 3600)
    """... shared at most this long ago."""

    upload_max_bytes: int = Field(default=100 * 2**20, ge=1024)
    """Request bodies of the audio API (``POST /v1/audio/...``) past this are refused (413)."""
    upload_max_duration_s: float = Field(default=1500.0, gt=0)
    """Uploaded recordings longer than this are refused (400); the default is OpenAI's own
    limit for its gpt-4o transcription models (25 minutes)."""
    upload_windows_in_flight: int = Field(default=4, ge=1, le=64)
    """Windows (30 s each) of one upload queued or transcribed at once; the rest of the
    recording is decoded only as they are done."""
    upload_max_concurrent: int = Field(default=16, ge=1)
    """Uploads one ingest node serves at once; more get 429."""
    upload_max_concurrent_per_client: int = Field(default=4, ge=1)
    """... of one client (a token's subject, else the client's address); more get 429."""
    upload_max_queued_windows: int = Field(default=2000, ge=1)
    """Upload windows waiting for a transcriber, over every upload; past it, 429."""
    upload_retry_after_s: int = Field(default=30, ge=1, le=3600)
    """The ``Retry-After`` of that 429."""
    upload_timeout_s: float = Field(default=1800.0, gt=0)
    """How long one upload may take in all before it is answered 504."""

    auth: Literal["auto", "on", "off"] = "auto"
    """auto: tokens are required unless ingest listens on loopback only."""
    token_secret: SecretStr = SecretStr("")
    """HMAC key that signs access tokens (``streamscribe token``); at least 32 bytes."""
    allowed_origins: str = ""
    """Comma-separated browser origins that may open streams besides the server's own
    (``*``: any)."""
    allowed_hosts: str = ""
    """Comma-separated names requests may address in ``Host`` (``*``: any); empty: the
    loopback names when listening on loopback (against DNS rebinding), else any."""

    # segmenter
    vad_aggressiveness: int = Field(default=3, ge=0, le=3)
    vad_frame_ms: Literal[10, 20, 30] = 30
    pre_speech_pad_ms: int = Field(default=300, ge=0, le=2000)
    hangover_ms: int = Field(default=300, ge=30, le=5000)
    long_utterance_s: float = Field(default=8.0, ge=1.0, le=30.0)
    long_hangover_ms: int = Field(default=240, ge=30, le=5000)
    speculate_after_ms: int = Field(default=150, ge=0, le=5000)
    min_speech_ms: int = Field(default=150, ge=0, le=5000)
    max_utterance_s: float = Field(default=15.0, ge=4.0, le=30.0)
    partial_interval_ms: int = Field(default=600, ge=0, le=10000)
    first_partial_ms: int = Field(default=300, ge=60, le=10000)
    """Speech before an utterance's first partial."""
    turn_gap_ms: int = Field(default=1000, ge=30, le=10000)
    """A pause this long ends the speaker's turn (its settled text follows)."""
    max_turn_s: float = Field(default=28.0, ge=5.0, le=60.0)
    turn_pad_ms: int = Field(default=600, ge=0, le=2000)

    # transcriber
    model: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    cpu_threads: int = Field(default=1, ge=0, le=256)
    beam_size: int = Field(default=5, ge=1, le=20)
    partial_beam_size: int = Field(default=1, ge=1, le=20)
    no_speech_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    log_prob_threshold: float = Field(default=-1.0, le=0.0)
    compression_ratio_threshold: float = Field(default=2.4, gt=1.0)
    partial_window_floor_s: float = Field(default=10.0, ge=1.0, le=30.0)
    final_window_floor_s: float = Field(default=10.0, ge=1.0, le=30.0)
    turn_window_floor_s: float = Field(default=10.0, ge=1.0, le=30.0)
    encoder_window_margin_s: float = Field(default=1.0, ge=0.0, le=30.0)
    max_tokens_per_s: int = Field(default=30, ge=0, le=1000)
    """Tokens a decoding may write per second of the audio in its window (0: no bound beyond
    Whisper's 448): text cannot outrun its speech, and a near-empty window otherwise can loop
    for a second of model time."""
    partial_jobs_max: int = Field(default=1000, ge=10)
    language_history: int = Field(default=8, ge=0, le=64)
    """``language=auto``: the session's recent choices kept as the prior of the next (0: each
    piece's detection stands alone)."""
    language_prior_weight: float = Field(default=1.0, ge=0, le=10)
    """``language=auto``: how much those count against a piece's own detection."""
    partial_model_share: float = Field(default=0.25, gt=0.0, le=1.0)
    """Most of each transcriber's model time that partials may take (the rest is kept for
    finals and turns under load)."""
    batch_size: int = Field(default=0, ge=0, le=64)
    """Most utterances per model call; 0 picks by device (8 on CUDA, 1 on CPU, as measured)."""
    reclaim_after_s: float = Field(default=10.0, ge=6.0, le=3600.0)
    """A final job idle this long on a transcriber (whose heartbeat stopped keeping it fresh)
    is taken over by another; at least three heartbeats."""
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts at a final job before it is dead-lettered and its speaker told."""
    batch_wait_ms: int = Field(default=10, ge=0, le=1000)
    """How long a batch that is not full waits for more jobs."""

    # operations: /metrics, /healthz, /readyz of the worker parts (ingest serves its own)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """0: any free port, announced in the part's heartbeat (``streamscribe status``)."""
    cloudwatch_namespace: str = ""
    """When set, each part prints its scaling metrics as CloudWatch EMF lines to stdout."""

    # translation
    translation_queue: str = "translations"
    translate_chars_per_minute: int = Field(default=3000, ge=0)
    translator_backend: Literal["bedrock", "openai"] = "bedrock"
    """What the translator calls for every pair Whisper does not serve."""
    whisper_translation: bool = True
    """Translations into English come from the transcribers' own multilingual model
    (Whisper's translate task, no cloud account, no extra model); off: from the translator's
    backend. An English-only model translates nothing (all its speech is English)."""
    bedrock_model_id: str = "amazon.nova-micro-v1:0"
    bedrock_region: str = "us-east-1"
    bedrock_endpoint_url: str = ""
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = ""
    openai_api_key: SecretStr = SecretStr("")
    translation_max_attempts: int = Field(default=4, ge=1, le=10)
    translation_timeout_s: float = Field(default=10.0, gt=0)

    transcriber_jobs: Literal["all", "live", "files"] = "all"
    """What a transcriber takes: ``all`` (live jobs first, upload windows when none wait),
    ``live`` (finals, turns, partials), ``files`` (upload windows only, at a lower CPU
    priority)."""

    # up
    transcribers: int = Field(default=2, ge=1, le=64)
    upload_transcribers: int = Field(default=1, ge=0, le=64)
    """Transcribers ``up`` runs for uploads only, beside the ``transcribers`` (then live
    only): an upload's windows never hold up a live final. 0: every transcriber takes both."""
    translator_enabled: bool = False
    """``up`` also starts a translator."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


def require_redis_url(settings: Settings) -> str:
    """The Redis URL, with ``STREAMSCRIBE_REDIS_PASSWORD`` put in when the URL has none."""
    if not settings.redis_url:
        raise ConfigError(
            "REDIS_URL (or STREAMSCRIBE_REDIS_URL) must be set to run this part alone"
        )
    url = urlsplit(settings.redis_url)
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL must be redis://, rediss:// or unix://, not {url.scheme}://")
    password = settings.redis_password.get_secret_value()
    if not password or url.password:
        return settings.redis_url
    user = quote(url.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{url.netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(url._replace(netloc=netloc))
