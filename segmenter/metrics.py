"""The segmenter's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.observability import CommonMetrics


class SegmenterMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "segmenter")
        self.sessions = Gauge(
            "streamscribe_segmenter_sessions", "Sessions this segmenter owns", registry=registry
        )
        self.sessions_opened = Counter(
            "streamscribe_segmenter_sessions_opened", "Sessions claimed", registry=registry
        )
        self.audio_seconds = Counter(
            "streamscribe_segmented_audio_seconds",
            "Seconds of audio segmented",
            registry=registry,
        )
        self.utterances = Counter(
            "streamscribe_utterances",
            "Utterances ended and sent for their final",
            registry=registry,
        )
        self.jobs = Counter(
            "streamscribe_jobs_enqueued",
            "Transcription jobs enqueued, by kind",
            ["kind"],
            registry=registry,
        )
