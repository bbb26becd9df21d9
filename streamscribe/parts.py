"""Each part's process: build it from settings, show its health and metrics, run it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Protocol

import redis
from prometheus_client import CollectorRegistry

from shared.addresses import is_loopback
from shared.cloudwatch import CloudWatchReporter
from shared.observability import CommonMetrics, HealthServer, Heartbeat, PartLoad
from shared.redis_client import connect
from shared.settings import Settings, require_redis_url
from streamscribe import logger
from streamscribe.options import ingest_options, model_options, segmenter_options

CUDA_BATCH_SIZE = 8
CPU_BATCH_SIZE = 1
FILES_NICENESS = 10
"""A transcriber for uploads only runs at this niceness: where it shares a machine's cores
with live transcribers, the live ones are scheduled first."""
"""On this kind of CPU a batch costs more per utterance than one at a time (measured with
``streamscribe bench --find-capacity --batch-sizes 1 4``); on a GPU batching pays."""


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _stop_on_signals(worker: _Stoppable) -> None:
    """First SIGTERM/SIGINT: finish the job in hand, then stop. Second: stop at once."""
    received = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received > 1:
            raise SystemExit(128 + signum)
        logger.info("signal %d: finishing current work, then stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _Operations:
    """A worker part's heartbeat and its /metrics, /healthz, /readyz server."""

    def __init__(
        self,
        settings: Settings,
        kind: str,
        registry: CollectorRegistry,
        metrics: CommonMetrics,
        *,
        load: Callable[[], PartLoad],
        scaling: Callable[[], Mapping[str, float]] | None = None,
        also: Callable[[redis.client.Pipeline], None] | None = None,
    ) -> None:
        client = connect(require_redis_url(settings))
        reporter = None
        if settings.cloudwatch_namespace and scaling is not None:
            reporter = CloudWatchReporter(settings.cloudwatch_namespace, kind, scaling)
        self.server = HealthServer(
            registry, self._readiness, host=settings.metrics_host, port=settings.metrics_port
        )
        self.heartbeat = Heartbeat(
            client,
            kind,
            load=load,
            metrics=metrics,
            metrics_url=f"{self.server.url}/metrics",
            reporter=reporter,
            also=also,
        )

    def _readiness(self) -> str | None:
        return None if self.heartbeat.redis_ok else "redis is not answering"

    def __enter__(self) -> _Operations:
        self.server.start()
        self.heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.heartbeat.stop()
        self.server.stop()


def run_ingest(settings: Settings) -> int:
    from ingest.server import IngestServer

    options = ingest_options(settings)
    if options.auth is None and not is_loopback(settings.host):
        logger.warning(
            "access tokens are OFF (STREAMSCRIBE_AUTH=off) while listening on %s: anyone who "
            "reaches this port can stream and read every room",
            settings.host,
        )
    server = IngestServer(options, require_redis_url(settings))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()

    asyncio.run(main())
    return 0


def run_segmenter(settings: Settings) -> int:
    from segmenter.metrics import SegmenterMetrics
    from segmenter.worker import SegmenterWorker

    registry = CollectorRegistry()
    metrics = SegmenterMetrics(registry)
    worker = SegmenterWorker(
        connect(require_redis_url(settings)),
        segmenter_options(settings),
        partial_jobs_max=settings.partial_jobs_max,
        metrics=metrics,
    )
    _stop_on_signals(worker)
    with _Operations(
        settings,
        "segmenter",
        registry,
        metrics,
        load=lambda: PartLoad(sessions=worker.session_count),
        scaling=lambda: {"SessionsPerSegmenter": worker.session_count},
        also=worker.renew_leases,
    ):
        worker.run()
    return 0


def run_transcriber(settings: Settings) -> int:
    from transcriber.language_choice import LanguageOptions
    from transcriber.metrics import JobQueueCollector, TranscriberMetrics, backlog_metrics
    from transcriber.model import SpeechModel
    from transcriber.recovery import RecoveryOptions
    from transcriber.worker import BatchOptions, PartialOptions, TranscriberWorker

    jobs = settings.transcriber_jobs
    if jobs == "files":  # the live transcribers on this machine get the CPU first
        os.nice(FILES_NICENESS)
    client = connect(require_redis_url(settings))
    registry = CollectorRegistry()
    metrics = TranscriberMetrics(registry)
    registry.register(JobQueueCollector(client, metrics))
    model = SpeechModel(model_options(settings))
    size = settings.batch_size or (CUDA_BATCH_SIZE if model.device == "cuda" else CPU_BATCH_SIZE)
    worker = TranscriberWorker(
        client,
        model,
        batch=BatchOptions(size, settings.batch_wait_ms),
        metrics=metrics,
        recovery=RecoveryOptions(settings.reclaim_after_s, settings.job_max_attempts),
        partials=PartialOptions(share=settings.partial_model_share),
        uploads=model if jobs != "live" else None,
        live=jobs != "files",
        languages=LanguageOptions(
            history=settings.language_history, prior_weight=settings.language_prior_weight
        ),
        translates=model if settings.whisper_translation and model.multilingual else None,
    )
    _stop_on_signals(worker)
    with _Operations(
        settings,
        "transcriber",
        registry,
        metrics,
        load=lambda: PartLoad(jobs_done=worker.jobs_done, jobs=jobs),
        scaling=lambda: backlog_metrics(client),
        also=worker.keep_jobs_fresh,
    ):
        worker.run()
    return 0


def run_translator(settings: Settings) -> int:
    from translator.worker import TranslatorMetrics, TranslatorWorker, build_translator

    client = connect(require_redis_url(settings))
    registry = CollectorRegistry()
    metrics = TranslatorMetrics(registry)
    worker = TranslatorWorker(
        client, build_translator(settings), settings.translation_queue, metrics=metrics
    )
    with _Operations(
        settings, "translator", registry, metrics, load=lambda: PartLoad(jobs_done=worker.jobs_done)
    ):
        worker.run(logging_level=settings.log_level)
    return 0
