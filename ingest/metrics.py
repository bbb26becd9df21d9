"""The ingest node's Prometheus metrics and its record of recent final latencies."""

from __future__ import annotations

import time
from collections import deque

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.observability import CommonMetrics, record_latency
from shared.schema import LatencySample

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class IngestMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry, *, samples_kept: int = 1000) -> None:
        super().__init__(registry, "ingest")
        self.sessions = Gauge(
            "streamscribe_ingest_sessions", "Connected clients", registry=registry
        )
        self.sessions_opened = Counter(
            "streamscribe_ingest_sessions_opened",
            "Client connections accepted",
            registry=registry,
        )
        self.sessions_resumed = Counter(
            "streamscribe_ingest_sessions_resumed",
            "Connections that took up a session again after a drop",
            registry=registry,
        )
        self.closes = Counter(
            "streamscribe_ingest_closes",
            "Sessions closed, by WebSocket close code",
            ["code"],
            registry=registry,
        )
        self.audio_seconds = Counter(
            "streamscribe_audio_seconds_in",
            "Seconds of audio received from clients",
            registry=registry,
        )
        self.uploads = Counter(
            "streamscribe_ingest_uploads",
            "Requests to the audio API (POST /v1/audio/...), by outcome",
            ["outcome"],
            registry=registry,
        )
        self.upload_audio_seconds = Counter(
            "streamscribe_upload_audio_seconds",
            "Seconds of uploaded audio transcribed",
            registry=registry,
        )
        self.finals = Counter(
            "streamscribe_finals_delivered",
            "Final transcripts sent to their speaker",
            registry=registry,
        )
        self.turns = Counter(
            "streamscribe_turns_delivered",
            "Turns (settled text) sent to their speaker",
            registry=registry,
        )
        self.partials = Counter(
            "streamscribe_partials_delivered",
            "Partial transcripts sent to their speaker",
            registry=registry,
        )
        self.final_latency = Histogram(
            "streamscribe_final_latency_seconds",
            "From the end of an utterance's speech (its endpoint) to its final being sent",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._samples: deque[LatencySample] = deque(maxlen=samples_kept)

    def upload_done(self, outcome: str, audio_s: float) -> None:
        self.uploads.labels(outcome).inc()
        self.upload_audio_seconds.inc(audio_s)

    def final_sent(self, endpoint_to_send_s: float) -> None:
        self.finals.inc()
        self.final_latency.observe(endpoint_to_send_s)
        self._samples.append(LatencySample(time.time(), endpoint_to_send_s))

    def flush_samples(self, pipe: redis.client.Pipeline) -> None:
        """Moves the latencies seen since the last call into Redis, for ``status``."""
        while self._samples:
            record_latency(pipe, self._samples.popleft())
