"""``streamscribe up``: a private Redis and every part as its own process, on one machine."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from shared import keys
from shared.addresses import url_host
from shared.errors import StreamscribeError
from streamscribe import logger
from streamscribe.redis_server import RedisServer
from streamscribe.running import RunningUp, announce
from streamscribe.supervision import GaveUp, RestartPolicy, RestartState


@dataclass(frozen=True, slots=True)
class LaunchOptions:
    host: str
    port: int
    transcribers: int
    redis_url: str
    """Empty: start a private redis-server."""
    translator: bool = False
    upload_transcribers: int = 0
    """Transcribers for uploads only; with any, the ``transcribers`` take live jobs only."""
    grpc_port: int | None = None
    """The gRPC API's port (None: no gRPC)."""
    startup_timeout_s: float = 120.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    env: tuple[tuple[str, str], ...] = ()
    """More settings for every part, e.g. ``(("STREAMSCRIBE_BATCH_SIZE", "4"),)``."""


class PartExited(StreamscribeError):
    pass


class ExitWatcher:
    """Wakes the supervisor when a process it watches exits: a daemon thread per process
    blocks in ``wait()``, so supervision blocks too instead of polling on a timer."""

    def __init__(self) -> None:
        self._exited: queue.SimpleQueue[str] = queue.SimpleQueue()

    def watch(self, name: str, process: subprocess.Popen[bytes]) -> None:
        def wait() -> None:
            process.wait()
            self._exited.put(name)

        threading.Thread(target=wait, name=f"exit-of-{name}", daemon=True).start()

    def next_exit(self, timeout_s: float | None) -> str | None:
        """The name of a process that exited, or None once ``timeout_s`` passed first
        (``None``: wait as long as it takes; a signal handler that raises ends the wait)."""
        try:
            return self._exited.get(timeout=timeout_s)
        except queue.Empty:
            return None


class LocalPipeline:
    """Starts and stops the parts; ``stop()`` leaves nothing running."""

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        self._redis_server: RedisServer | None = None
        self.redis_url = options.redis_url
        self.parts: dict[str, subprocess.Popen[bytes]] = {}
        self._kinds: dict[str, str] = {}
        self._envs: dict[str, dict[str, str]] = {}
        """Each part's environment, to restart it with."""
        self._started_at: dict[str, float] = {}
        self._restarts: dict[str, RestartState] = {}
        self._due: dict[str, float] = {}
        """Parts waiting to be restarted, and when."""
        self._exits = ExitWatcher()

    @property
    def url(self) -> str:
        return f"ws://{url_host(self.options.host)}:{self.options.port}/v1/stream"

    @property
    def pids(self) -> list[int]:
        pids = [p.pid for p in self.parts.values()]
        if self._redis_server is not None and self._redis_server.pid is not None:
            pids.append(self._redis_server.pid)
        return pids

    def start(self) -> None:
        try:
            if not self.redis_url:
                self._redis_server = RedisServer().start()
                self._watch_redis()
                self.redis_url = self._redis_server.url
                logger.info("private redis-server at %s", self.redis_url)
            env = dict(os.environ)
            env.update(
                REDIS_URL=self.redis_url,
                STREAMSCRIBE_HOST=self.options.host,
                STREAMSCRIBE_PORT=str(self.options.port),
            )
            if self.options.grpc_port is not None:
                env["STREAMSCRIBE_GRPC_PORT"] = str(self.options.grpc_port)
            env.update(self.options.env)
            self._spawn("ingest", env)
            self._spawn("segmenter", env)
            split = self.options.upload_transcribers > 0
            live = {**env, "STREAMSCRIBE_TRANSCRIBER_JOBS": "live"} if split else env
            for number in range(self.options.transcribers):
                self._spawn("transcriber", live, name=f"transcriber-{number + 1}")
            files = {**env, "STREAMSCRIBE_TRANSCRIBER_JOBS": "files"}
            for number in range(self.options.upload_transcribers):
                self._spawn("transcriber", files, name=f"transcriber-files-{number + 1}")
            if self.options.translator:
                self._spawn("translator", env)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, part: str, env: dict[str, str], name: str | None = None) -> None:
        name = name or part
        command = [sys.executable, "-m", "streamscribe", part]
        self._kinds[name] = part
        self._envs[name] = env
        self._started_at[name] = time.monotonic()
        self.parts[name] = subprocess.Popen(command, env=env)
        self._exits.watch(name, self.parts[name])

    def _watch_redis(self) -> None:
        process = self._redis_server.process if self._redis_server else None
        if process is not None:
            self._exits.watch("redis-server", process)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        health = f"http://{url_host(self.options.host)}:{self.options.port}/healthz"
        client = redis.Redis.from_url(self.redis_url)
        try:
            while not (_healthy(health) and self._workers_ready(client)):
                self.check_parts()
                if time.monotonic() > deadline:
                    raise PartExited("the pipeline did not become ready in time")
                time.sleep(0.1)
        finally:
            client.close()

    def _workers_ready(self, client: redis.Redis) -> bool:
        try:
            transcribers = client.xinfo_consumers(keys.FINAL_JOBS_STREAM, keys.TRANSCRIBER_GROUP)
            segmenters = client.xinfo_consumers(keys.SESSIONS_STREAM, keys.SEGMENTER_GROUP)
        except redis.ResponseError:
            return False
        return len(transcribers) >= self.options.transcribers and len(segmenters) >= 1

    def check_parts(self) -> None:
        for name, process in self.parts.items():
            code = process.poll()
            if code is not None:
                raise PartExited(f"{name} exited with code {code}")

    def wait(self) -> None:
        """Watches the parts until a signal arrives, restarting any that dies."""
        while True:
            self.supervise()
            due = min(self._due.values(), default=None)
            self._exits.next_exit(None if due is None else max(0.0, due - time.monotonic()))

    def supervise(self) -> None:
        """Schedules a restart (with backoff) for each part that died and restarts those due;
        :class:`PartExited` when one keeps dying or the private Redis cannot come back."""
        now = time.monotonic()
        if self._redis_server is not None and not self._redis_server.running:
            logger.error("the private redis-server died; starting a new one on the same port")
            self._redis_server = RedisServer(port=self._redis_server.port).start()
            self._watch_redis()
        for name, process in self.parts.items():
            code = process.poll()
            if code is None or name in self._due:
                continue
            state = self._restarts.setdefault(name, RestartState(self.options.restart))
            try:
                delay = state.on_death(uptime_s=now - self._started_at[name])
            except GaveUp as exc:
                raise PartExited(f"{name} {exc}") from None
            logger.error("%s exited with code %s; restarting it in %.0f s", name, code, delay)
            self._due[name] = now + delay
        for name, due in list(self._due.items()):
            if due <= now:
                del self._due[name]
                self._spawn(self._kinds[name], self._envs[name], name=name)
                logger.info("%s restarted (pid %d)", name, self.parts[name].pid)

    def restarts(self, name: str) -> int:
        state = self._restarts.get(name)
        return state.restarts if state else 0

    def stop(self) -> None:
        for process in self.parts.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in self.parts.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", name)
                process.kill()
                process.wait()
        self.parts.clear()
        if self._redis_server is not None:
            self._redis_server.stop()
            self._redis_server = None


def run_up(options: LaunchOptions) -> int:
    pipeline = LocalPipeline(options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    announced: Path | None = None
    try:
        pipeline.start()
        host = url_host(options.host)
        print(f"streamscribe is up: {pipeline.url}", flush=True)
        print(f"  page:   http://{host}:{options.port}/  (live captions, rooms)", flush=True)
        print(f"  health: http://{host}:{options.port}/healthz", flush=True)
        if options.grpc_port is not None:
            print(
                f"  gRPC:   {host}:{options.grpc_port}  (streamscribe.v1.Transcription)", flush=True
            )
        print(f"  try:    streamscribe stream FILE.wav --url {pipeline.url}", flush=True)
        print(f"  status: streamscribe status --redis-url {pipeline.redis_url}", flush=True)
        announced = announce(options.port, RunningUp(os.getpid(), pipeline.url, pipeline.redis_url))
        pipeline.wait()
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    except PartExited as exc:
        logger.error("%s; stopping everything", exc)
        return 1
    finally:
        if announced is not None:
            announced.unlink(missing_ok=True)
        pipeline.stop()
    return 0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
