"""The transcriber's Prometheus metrics, and the job queues as seen at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import keys
from shared.observability import CommonMetrics, live_parts
from shared.redis_client import queue_stats

QUEUES = {"final": keys.FINAL_JOBS_STREAM, "partial": keys.PARTIAL_JOBS_STREAM}


class TranscriberMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "transcriber")
        self.jobs = Counter(
            "streamscribe_transcription_jobs",
            "Jobs transcribed, by kind",
            ["kind"],
            registry=registry,
        )
        self.shed = Counter(
            "streamscribe_jobs_shed",
            "Jobs skipped unrun: superseded partials and speculations voided by speech",
            ["kind"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "streamscribe_batch_size",
            "Utterances per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.model_seconds = Counter(
            "streamscribe_model_seconds",
            "Seconds spent in the model, by job kind (a batch's time shared among its jobs)",
            ["kind"],
            registry=registry,
        )
        self.audio_seconds = Counter(
            "streamscribe_transcribed_audio_seconds",
            "Seconds of audio transcribed (model seconds over this is the model time per "
            "audio second)",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "streamscribe_job_wait_seconds",
            "From a job's enqueueing to the start of its transcription",
            ["kind"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )


class JobQueueCollector(Collector):
    """Queue depth and the oldest job's age, read from Redis when scraped.

    ``streamscribe_utterance_backlog`` (final jobs not yet done) is the signal transcribers
    scale on.
    """

    def __init__(self, client: redis.Redis, metrics: CommonMetrics) -> None:
        self._redis = client
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "streamscribe_jobs_waiting", "Jobs queued or in hand, by queue", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "streamscribe_oldest_job_age_seconds",
            "Age of the oldest job, by queue",
            labels=["queue"],
        )
        backlog = GaugeMetricFamily(
            "streamscribe_utterance_backlog", "Final and speculative jobs not yet done"
        )
        now = time.time()
        try:
            stats = {
                name: queue_stats(self._redis, stream, now=now) for name, stream in QUEUES.items()
            }
        except redis.RedisError:
            self._metrics.redis_errors.inc()
            return
        for name, stat in stats.items():
            waiting.add_metric([name], stat.waiting)
            oldest.add_metric([name], stat.oldest_age_s)
        backlog.add_metric([], stats["final"].waiting)
        yield waiting
        yield oldest
        yield backlog


def backlog_metrics(client: redis.Redis) -> dict[str, float]:
    """The transcribers' scaling signal: final jobs not yet done, in all and per transcriber."""
    waiting = queue_stats(client, keys.FINAL_JOBS_STREAM, now=time.time()).waiting
    transcribers = sum(p.kind == "transcriber" for p in live_parts(client))
    return {
        "UtteranceBacklog": waiting,
        "UtteranceBacklogPerTranscriber": waiting / max(1, transcribers),
    }
