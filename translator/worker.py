"""``streamscribe translator``: an rq worker on the translation queue."""

from __future__ import annotations

import os
import socket

import redis
from rq import Queue, SimpleWorker

from shared.settings import Settings, require_redis_url
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


class TranslatorWorker:
    """rq's worker without forking (jobs are short network calls); SIGTERM lets the job in
    hand finish, as rq does."""

    def __init__(self, client: redis.Redis, translator: Translator, queue_name: str) -> None:
        install(TranslationService(translator, client))
        self._worker = SimpleWorker(
            [Queue(queue_name, connection=client)],
            connection=client,
            name=f"translator-{socket.gethostname()}-{os.getpid()}",
        )

    def run(self, *, burst: bool = False, logging_level: str = "INFO") -> None:
        logger.info("translator %s waiting for jobs", self._worker.name)
        self._worker.work(burst=burst, with_scheduler=False, logging_level=logging_level)

    def stop(self) -> None:
        self._worker.request_stop(0, None)  # type: ignore[no-untyped-call]


def run_translator(settings: Settings) -> int:
    client = redis.Redis.from_url(require_redis_url(settings))
    worker = TranslatorWorker(client, build_translator(settings), settings.translation_queue)
    worker.run(logging_level=settings.log_level)
    return 0
