"""The one worker shape of the pipeline's Redis loops (segmenter, transcriber), after rq's
``Worker``: ``run()`` serves until ``stop()``, which lets the work in hand finish (warm
shutdown; the entry point's second signal exits at once, cold); Redis outages are ridden out
with backoff and a ``recover`` after each. The heartbeat and health endpoints are the entry
point's (``streamscribe.parts``), which reads ``consumer`` and the worker's load.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import redis

from shared import logger
from shared.addresses import process_name
from shared.resilience import Backoff, serve


class RedisWorker(ABC):
    """Subclasses say what one ``step`` is (a blocking read and what follows from it), what
    to create before serving (``prepare``) and what to do when Redis comes back (``recover``)."""

    kind: str
    """What the worker is, in its log lines (``segmenter``, ``transcriber``)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        consumer: str | None,
        on_redis_error: Callable[[], None],
    ) -> None:
        """``consumer``: its name in Redis's consumer groups (default: host and pid);
        ``on_redis_error``: counts each time Redis could not be reached."""
        self._redis = client
        self.consumer = consumer or process_name()
        self._on_redis_error = on_redis_error
        self._backoff = Backoff()

    def stop(self) -> None:
        """Ends ``run()`` once the step in hand is done (safe from a signal handler)."""
        self._backoff.stopping.set()

    @property
    def stopping(self) -> bool:
        return self._backoff.stopping.is_set()

    def run(self) -> None:
        """Serves until ``stop()``."""
        self.prepare()
        logger.info("%s %s %s", self.kind, self.consumer, self.waiting_for())
        serve(
            self.step,
            stopping=self._backoff.stopping.is_set,
            client=self._redis,
            backoff=self._backoff,
            on_error=self._on_redis_error,
            recover=self.recover,
            name=f"{self.kind} {self.consumer}",
        )
        logger.info("%s %s stopped %s", self.kind, self.consumer, self.stopped_with())

    @abstractmethod
    def prepare(self) -> None:
        """Creates what serving needs (consumer groups, this consumer); idempotent."""

    @abstractmethod
    def step(self) -> None:
        """One blocking read (at most its block time) and the work it brings."""

    @abstractmethod
    def recover(self) -> None:
        """Redis came back (perhaps empty): make serving possible again."""

    @abstractmethod
    def waiting_for(self) -> str:
        """The end of the log line when serving starts ("waiting for jobs")."""

    @abstractmethod
    def stopped_with(self) -> str:
        """The end of the log line when serving ends ("after 12 jobs")."""
