"""``streamscribe translator``: an rq worker on the translation queue."""

from __future__ import annotations

from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter
from rq import Queue, SimpleWorker
from rq.job import Job

from shared.addresses import process_name
from shared.observability import CommonMetrics
from shared.settings import Settings
from translator import logger
from translator.backends import (
    BedrockOptions,
    BedrockTranslator,
    OpenAICompatibleTranslator,
    OpenAIOptions,
    Translator,
)
from translator.jobs import TranslationService, install


def build_translator(settings: Settings) -> Translator:
    if settings.translator_backend == "openai":
        return OpenAICompatibleTranslator(
            OpenAIOptions(
                base_url=settings.openai_base_url,
                model=settings.openai_model,
                api_key=settings.openai_api_key.get_secret_value(),
                max_attempts=settings.translation_max_attempts,
                timeout_s=settings.translation_timeout_s,
            )
        )
    return BedrockTranslator(
        BedrockOptions(
            model_id=settings.bedrock_model_id,
            region=settings.bedrock_region,
            endpoint_url=settings.bedrock_endpoint_url or None,
            max_attempts=settings.translation_max_attempts,
            timeout_s=settings.translation_timeout_s,
        )
    )


class TranslatorMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "translator")
        self.jobs = Counter(
            "streamscribe_translation_jobs",
            "Translation jobs run, by outcome",
            ["outcome"],
            registry=registry,
        )


class _CountingWorker(SimpleWorker):
    def __init__(self, *args: Any, metrics: TranslatorMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics
        self.jobs_done = 0

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        succeeded = bool(super().perform_job(job, queue, *args, **kwargs))
        self.metrics.jobs.labels("done" if succeeded else "failed").inc()
        self.jobs_done += 1
        return succeeded


class TranslatorWorker:
    """rq's worker without forking (jobs are short network calls); SIGTERM lets the job in
    hand finish, as rq does."""

    def __init__(
        self,
        client: redis.Redis,
        translator: Translator,
        queue_name: str,
        *,
        metrics: TranslatorMetrics | None = None,
    ) -> None:
        install(TranslationService(translator, client))
        self._worker = _CountingWorker(
            [Queue(queue_name, connection=client)],
            connection=client,
            name=process_name("translator"),
            metrics=metrics or TranslatorMetrics(CollectorRegistry()),
        )

    @property
    def jobs_done(self) -> int:
        return self._worker.jobs_done

    def run(self, *, burst: bool = False, logging_level: str = "INFO") -> None:
        logger.info("translator %s waiting for jobs", self._worker.name)
        self._worker.work(burst=burst, with_scheduler=False, logging_level=logging_level)

    def stop(self) -> None:
        self._worker.request_stop(0, None)  # type: ignore[no-untyped-call]
