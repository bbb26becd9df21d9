"""What every part shows operators: a heartbeat in Redis and /metrics, /healthz, /readyz.

Metrics live in a registry each part creates and passes around; nothing is module-global.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from shared import keys, logger
from shared.addresses import process_name, url_host
from shared.cloudwatch import CloudWatchReporter
from shared.errors import SchemaError
from shared.schema import LatencySample, PartHeartbeat

HEARTBEAT_INTERVAL_S = 2.0
LATENCY_SAMPLES_KEPT = 2000

Readiness = Callable[[], str | None]
"""None when ready, else why not."""


@dataclass(frozen=True, slots=True)
class PartLoad:
    sessions: int = 0
    jobs_done: int = 0
    jobs: str = "all"
    """What kinds of job a transcriber takes (its heartbeat says, for ingest's readiness)."""


class CommonMetrics:
    """What every part counts, whatever it does."""

    def __init__(self, registry: CollectorRegistry, part: str) -> None:
        self.redis_errors = Counter(
            "streamscribe_redis_errors",
            "Redis commands that failed (each one is followed by a reconnect)",
            registry=registry,
        )
        self.errors = Counter("streamscribe_errors", "Errors by kind", ["kind"], registry=registry)
        self.part = part


class Heartbeat:
    """Renews this part's heartbeat key every ``interval_s`` from a daemon thread.

    ``redis_ok`` is how readiness learns whether Redis answered lately.
    """

    def __init__(
        self,
        client: redis.Redis,
        kind: str,
        *,
        load: Callable[[], PartLoad],
        metrics: CommonMetrics,
        ready: Callable[[], bool] = lambda: True,
        metrics_url: str = "",
        part_id: str | None = None,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        also: Callable[[redis.client.Pipeline], None] | None = None,
        reporter: CloudWatchReporter | None = None,
        observe: Callable[[redis.Redis], None] | None = None,
    ) -> None:
        self._redis = client
        self.kind = kind
        self.part_id = part_id or process_name(kind)
        self._load = load
        self._ready = ready
        self._metrics = metrics
        self.metrics_url = metrics_url
        self._interval_s = interval_s
        self._also = also
        """Adds more commands to each beat's pipeline (e.g. recent latencies)."""
        self._reporter = reporter
        self._observe = observe
        """Reads what the part needs to know of the others after each beat."""
        self._started_at = time.time()
        self._last_ok = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    @property
    def redis_ok(self) -> bool:
        return time.monotonic() - self._last_ok < 3 * self._interval_s

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(keys.part_heartbeat(self.part_id))
            pipe.srem(keys.PARTS_INDEX, self.part_id)
            pipe.execute()
        except redis.RedisError:
            logger.warning("could not remove the heartbeat of %s", self.part_id, exc_info=True)

    def beat(self) -> None:
        load = self._load()
        heartbeat = PartHeartbeat(
            kind=self.kind,
            part_id=self.part_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            sent_at=time.time(),
            metrics_url=self.metrics_url,
            ready=self._ready(),
            sessions=load.sessions,
            jobs_done=load.jobs_done,
            jobs=load.jobs,
        )
        try:
            pipe = self._redis.pipeline(transaction=False)
            ttl_ms = int(self._interval_s * 3 * 1000)
            pipe.set(keys.part_heartbeat(self.part_id), heartbeat.encode(), px=ttl_ms)
            pipe.sadd(keys.PARTS_INDEX, self.part_id)
            if self._also is not None:
                self._also(pipe)
            pipe.execute()
        except redis.RedisError:
            self._metrics.redis_errors.inc()
            logger.warning("heartbeat of %s failed", self.part_id, exc_info=True)
            return
        self._last_ok = time.monotonic()
        if self._observe is not None:
            try:
                self._observe(self._redis)
            except redis.RedisError:
                self._metrics.redis_errors.inc()
                logger.warning("%s could not read the other parts", self.part_id, exc_info=True)
        if self._reporter is not None:
            try:
                self._reporter.report_if_due()
            except redis.RedisError:
                self._metrics.redis_errors.inc()
                logger.warning("scaling metrics of %s not reported", self.part_id, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.beat()


def live_parts(client: redis.Redis) -> list[PartHeartbeat]:
    """Parts whose heartbeat has not expired; ids of expired ones leave the index."""
    ids = sorted(i.decode() for i in client.smembers(keys.PARTS_INDEX))  # type: ignore[union-attr]
    if not ids:
        return []
    values = client.mget([keys.part_heartbeat(i) for i in ids])
    parts, gone = [], []
    for part_id, value in zip(ids, values, strict=True):
        if not isinstance(value, bytes):
            gone.append(part_id)
            continue
        try:
            parts.append(PartHeartbeat.decode(value))
        except SchemaError:
            logger.warning("unreadable heartbeat of %s", part_id, exc_info=True)
    if gone:
        client.srem(keys.PARTS_INDEX, *gone)
    return sorted(parts, key=lambda p: (p.kind, p.part_id))


def record_latency(pipe: redis.client.Pipeline, sample: LatencySample) -> None:
    pipe.lpush(keys.FINAL_LATENCIES, sample.encode())
    pipe.ltrim(keys.FINAL_LATENCIES, 0, LATENCY_SAMPLES_KEPT - 1)


@dataclass(frozen=True, slots=True)
class OperationsReply:
    status: HTTPStatus
    body: bytes
    content_type: str = "text/plain"


def operations_reply(
    path: str, registry: CollectorRegistry, readiness: Readiness
) -> OperationsReply | None:
    """The one router of ``/metrics``, ``/healthz`` and ``/readyz`` (None: another path),
    served by :class:`HealthServer` and by the ingest node on its own port."""
    if path == "/metrics":
        return OperationsReply(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        return OperationsReply(HTTPStatus.OK, b"ok\n")
    if path == "/readyz":
        problem = readiness()
        if problem is None:
            return OperationsReply(HTTPStatus.OK, b"ready\n")
        return OperationsReply(HTTPStatus.SERVICE_UNAVAILABLE, f"{problem}\n".encode())
    return None


class HealthServer:
    """``/metrics``, ``/healthz`` (the process answers) and ``/readyz`` (it can do its work)
    over HTTP from a daemon thread, for the parts that are not HTTP servers themselves."""

    def __init__(
        self, registry: CollectorRegistry, readiness: Readiness, *, host: str, port: int
    ) -> None:
        handler = _handler_class(registry, readiness)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{url_host(str(host))}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info("metrics and health at %s/metrics", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(
    registry: CollectorRegistry, readiness: Readiness
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply = operations_reply(self.path.split("?", 1)[0], registry, readiness)
            if reply is None:
                self._reply(HTTPStatus.NOT_FOUND, b"not found\n")
            else:
                self._reply(reply.status, reply.body, reply.content_type)

        def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds would drown the log

    return Handler
