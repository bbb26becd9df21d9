"""The composition root's mapping: flat settings into the option objects each part owns.

Settings are read once (``shared.settings``); each part's options live in the part
(``ingest/options.py``, ``transcriber/options.py``, ``segmenter/options.py``), and only this
module knows both.
"""

from __future__ import annotations

from ingest.options import (
    AuthOptions,
    IngestOptions,
    RoomHistoryOptions,
    SessionLimits,
    UploadOptions,
)
from segmenter.options import SegmenterOptions
from shared.addresses import is_loopback
from shared.errors import ConfigError
from shared.settings import ENV_PREFIX, Settings
from transcriber.options import ModelOptions


def model_options(settings: Settings) -> ModelOptions:
    return ModelOptions(
        model=settings.model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        partial_beam_size=settings.partial_beam_size,
        no_speech_threshold=settings.no_speech_threshold,
        log_prob_threshold=settings.log_prob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        partial_window_floor_s=settings.partial_window_floor_s,
        final_window_floor_s=settings.final_window_floor_s,
        turn_window_floor_s=settings.turn_window_floor_s,
        encoder_window_margin_s=settings.encoder_window_margin_s,
        max_tokens_per_s=settings.max_tokens_per_s,
    )


def ingest_options(settings: Settings) -> IngestOptions:
    model = model_options(settings)
    return IngestOptions(
        host=settings.host,
        port=settings.port,
        grpc_port=settings.grpc_port,
        max_frame_bytes=settings.max_frame_bytes,
        outgoing_queue_messages=settings.outgoing_queue_messages,
        outgoing_queue_bytes=settings.outgoing_queue_bytes,
        close_timeout_s=settings.close_timeout_s,
        model_name=model.display_name,
        english_only=model.english_only,
        translation_queue=settings.translation_queue,
        whisper_translation=settings.whisper_translation and not model.english_only,
        translate_chars_per_minute=settings.translate_chars_per_minute,
        cloudwatch_namespace=settings.cloudwatch_namespace,
        auth=auth_options(settings),
        limits=SessionLimits(
            max_sessions=settings.max_sessions,
            max_session_s=settings.max_session_s,
            idle_timeout_s=settings.idle_timeout_s,
            max_audio_rate=settings.max_audio_rate,
            audio_burst_s=settings.audio_burst_s,
            max_messages_per_s=settings.max_messages_per_s,
            message_burst=settings.message_burst,
            max_audio_frames_per_s=settings.max_audio_frames_per_s,
            max_connections=settings.max_connections,
            max_connections_per_address=settings.max_connections_per_address,
            audio_frame_burst=settings.audio_frame_burst,
            max_room_participants=settings.max_room_participants,
        ),
        allowed_origins=tuple(
            o.strip().rstrip("/") for o in settings.allowed_origins.split(",") if o.strip()
        ),
        allowed_hosts=allowed_hosts(settings),
        resume_window_s=settings.resume_window_s,
        room_history=RoomHistoryOptions(settings.room_history_entries, settings.room_history_s),
        realtime_hold_after_gap_s=max(
            0.0, (settings.turn_gap_ms - settings.pre_speech_pad_ms - settings.hangover_ms) / 1000
        ),
        uploads=UploadOptions(
            max_upload_bytes=settings.upload_max_bytes,
            max_duration_s=settings.upload_max_duration_s,
            max_queued_windows=settings.upload_max_queued_windows,
            windows_in_flight=settings.upload_windows_in_flight,
            max_concurrent=settings.upload_max_concurrent,
            max_concurrent_per_client=settings.upload_max_concurrent_per_client,
            retry_after_s=settings.upload_retry_after_s,
            result_timeout_s=settings.upload_timeout_s,
        ),
    )


def auth_required(settings: Settings) -> bool:
    return settings.auth == "on" or (settings.auth == "auto" and not is_loopback(settings.host))


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    configured = tuple(
        h.strip().lower().strip("[]") for h in settings.allowed_hosts.split(",") if h.strip()
    )
    if configured:
        return configured
    return LOOPBACK_NAMES if is_loopback(settings.host) else ("*",)


def auth_options(settings: Settings) -> AuthOptions | None:
    """What ingest checks tokens with, or None when they are off."""
    secret = settings.token_secret.get_secret_value()
    if not auth_required(settings):
        return AuthOptions(secret) if secret and settings.auth != "off" else None
    if not secret:
        raise ConfigError(
            f"{ENV_PREFIX}TOKEN_SECRET must be set: ingest listens on {settings.host}, so "
            f"access tokens are required ({ENV_PREFIX}AUTH=off turns them off)"
        )
    try:
        return AuthOptions(secret)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}TOKEN_SECRET: {exc}") from exc


def segmenter_options(settings: Settings) -> SegmenterOptions:
    try:
        return SegmenterOptions(
            vad_aggressiveness=settings.vad_aggressiveness,
            frame_ms=settings.vad_frame_ms,
            pre_speech_pad_ms=settings.pre_speech_pad_ms,
            hangover_ms=settings.hangover_ms,
            long_utterance_s=settings.long_utterance_s,
            long_hangover_ms=settings.long_hangover_ms,
            speculate_after_ms=settings.speculate_after_ms,
            min_speech_ms=settings.min_speech_ms,
            max_utterance_s=settings.max_utterance_s,
            partial_interval_ms=settings.partial_interval_ms,
            first_partial_ms=settings.first_partial_ms,
            turn_gap_ms=settings.turn_gap_ms,
            max_turn_s=settings.max_turn_s,
            turn_pad_ms=settings.turn_pad_ms,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid segmenter settings: {exc}") from exc
