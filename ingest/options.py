"""What an ingest node is configured with: its listener, access tokens and per-session limits."""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuthOptions:
    secret: str
    """HMAC key; never logged."""
    leeway_s: float = 5.0

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")

    def __repr__(self) -> str:
        return "AuthOptions(secret=***)"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_sessions: int = 500
    """Connections one ingest node holds; more are refused with 1013."""
    max_session_s: float = 4 * 3600.0
    idle_timeout_s: float = 120.0
    """No frame at all (audio, command or keepalive) for this long ends the session (4008)."""
    max_audio_rate: float = 2.0
    """Audio accepted, in seconds per second of wall time, over the session (4029 beyond)."""
    audio_burst_s: float = 10.0
    """Audio that may arrive ahead of that rate (a client catching up after a stall)."""
    max_messages_per_s: float = 20.0
    """Text messages accepted per second, over the session (4029 beyond)."""
    message_burst: int = 100
    max_audio_frames_per_s: float = 500.0
    """Audio frames accepted per second, whatever their size (4029 beyond): an empty frame
    costs no audio time but still a parse and a Redis-free pass through the session, and a
    flood of them took a core. 500 is above the most frames a real client sends: a browser's
    AudioWorklet hands over 128 samples at a time, 375 per second at 48 kHz."""
    audio_frame_burst: int = 1000
    max_room_participants: int = 500
    max_connections: int = 10000
    """Open TCP connections one node holds (WebSocket, page, health, uploads), at most; more
    are dropped at once. Never more than the process's file limit allows, less a reserve."""
    max_connections_per_address: int = 1000
    """... from one client address (behind a load balancer: one of its nodes)."""


@dataclass(frozen=True, slots=True)
class UploadOptions:
    max_upload_bytes: int = 100 * 2**20
    """Larger request bodies are refused with 413."""
    max_duration_s: float = 1500.0
    """Longer recordings are refused (400): at the container's declared duration before any
    decoding, else as soon as the decoded audio passes it."""
    max_queued_windows: int = 2000
    """Windows of every upload waiting for a transcriber; past it, 429 with Retry-After."""
    windows_in_flight: int = 4
    """Windows of one upload queued or being transcribed at once: the next is decoded when one
    is done, so an upload holds at most this many windows (30 s, 0.96 MB each) in Redis and
    one in ingest, however long the recording."""
    max_concurrent: int = 16
    """Uploads one node transcribes at once; more are refused with 429."""
    max_concurrent_per_client: int = 4
    """... of one client (its token's subject with access tokens on, else its address)."""
    retry_after_s: int = 30
    max_window_s: float = 30.0
    result_timeout_s: float = 1800.0
    """How long an upload may wait for its windows in all; then 504."""

    def __post_init__(self) -> None:
        counts = (self.windows_in_flight, self.max_concurrent, self.max_concurrent_per_client)
        if self.max_upload_bytes < 1 or self.max_queued_windows < 1 or min(counts) < 1:
            raise ValueError("upload limits must be positive")
        if not 1.0 <= self.max_window_s <= 30.0:
            raise ValueError("upload windows must be 1 to 30 s (Whisper's window)")


@dataclass(frozen=True, slots=True)
class RoomHistoryOptions:
    entries: int = 200
    """The room log's latest finals, turns and translations (0: no history)."""
    max_age_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.entries < 0 or self.max_age_s < 0:
            raise ValueError("room history bounds must not be negative")


@dataclass(frozen=True, slots=True)
class IngestOptions:
    host: str
    port: int
    max_frame_bytes: int
    outgoing_queue_messages: int
    close_timeout_s: float
    model_name: str
    english_only: bool
    outgoing_queue_bytes: int = 4 * 2**20
    """Characters of messages queued for one client (its outbox entries and replays)."""
    translation_queue: str = "translations"
    whisper_translation: bool = False
    """Translations into English come from the transcribers' own multilingual model
    (Whisper's translate task), not from the translator."""
    translate_chars_per_minute: int = 3000
    cloudwatch_namespace: str = ""
    auth: AuthOptions | None = None
    """None: no token needed."""
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ("*",)
    """Host names (without port) requests may name; ``*``: any."""
    limits: SessionLimits = field(default_factory=SessionLimits)
    resume_window_s: int = 60
    room_history: RoomHistoryOptions = field(default_factory=RoomHistoryOptions)
    """What a participant joining a room is sent of what was said before."""
    uploads: UploadOptions = field(default_factory=UploadOptions)
    """Files sent to the audio API (``POST /v1/audio/transcriptions``)."""
    grpc_port: int | None = None
    """The gRPC API's port (None: no gRPC; 0: any free one)."""
    realtime_hold_after_gap_s: float = 0.4
    """OpenAI Realtime: a final after this pause may begin the next turn (the segmenter's
    turn gap less the padding its utterances carry), so its delta waits for the turn."""
