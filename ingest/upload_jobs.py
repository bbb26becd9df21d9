"""An upload's windows through Redis: queued for the transcribers (below every live job) as
they are decoded, a few at a time, their results read back in window order while the upload
is kept alive."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from ingest import logger
from ingest.options import UploadOptions
from ingest.upload_audio import CutWindow
from shared import keys
from shared.errors import SchemaError, StreamscribeError
from shared.file_jobs import FileTask, FileWindowJob, FileWindowResult

LIVE_TTL_S = 30
"""The upload's live key lapses this long after its request stopped waiting."""
READ_BLOCK_MS = 1000
"""Each wait for results, kept under redis-py's socket timeout (5 s by default from 8.2 on,
which ended every ``BLOCK 5000`` that waited it out) and short enough to notice a client that
hung up within a second."""


@dataclass(frozen=True, slots=True)
class UploadRequest:
    task: FileTask
    language: str | None
    prompt: str
    temperature: float
    word_timestamps: bool


class QueueFull(StreamscribeError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the transcription queue is full")
        self.retry_after_s = retry_after_s


class UploadTimedOut(StreamscribeError):
    pass


class ClientGone(StreamscribeError):
    """The client hung up: the rest of its upload is not transcribed."""


async def _never_gone() -> bool:
    return False


class UploadQueue:
    def __init__(self, client: redis.asyncio.Redis, options: UploadOptions) -> None:
        self._redis = client
        self.options = options

    async def transcribe(
        self,
        windows: AsyncIterator[CutWindow],
        request: UploadRequest,
        *,
        gone: Callable[[], Awaitable[bool]] = _never_gone,
    ) -> AsyncIterator[FileWindowResult]:
        """Each window's result, in window order (windows without speech come back empty at
        once). At most ``options.windows_in_flight`` windows of the upload are queued or being
        transcribed at a time; the next is taken from ``windows`` (decoded) only when one of
        them is done, so neither this node nor Redis holds more of an upload than that.
        Leaving the iteration early, or ``gone()`` turning true, abandons the upload:
        transcribers skip what is left of it."""
        upload_id = secrets.token_hex(12)
        progress = _Progress(upload_id)
        first: list[CutWindow] = []
        """Decoded before anything is queued, up to the windows in flight, so that the upload
        is admitted by what it will queue (silent windows are held without their audio)."""
        spoken = 0
        while spoken < self.options.windows_in_flight:
            cut = await anext(windows, None)
            if cut is None:
                progress.exhausted = True
                break
            spoken += cut.window.speech
            first.append(cut if cut.window.speech else CutWindow(cut.window, b""))
        queued = int(await self._redis.xlen(keys.FILE_JOBS_STREAM))
        if queued + spoken > self.options.max_queued_windows:
            raise QueueFull(self.options.retry_after_s)
        live, results = keys.upload_live(upload_id), keys.upload_results(upload_id)
        await self._redis.set(live, b"1", ex=LIVE_TTL_S)
        deadline = time.monotonic() + self.options.result_timeout_s
        try:
            for cut in first:
                await self._queue(progress, cut, request)
            first.clear()
            while True:
                while not progress.exhausted and len(progress.waiting) < (
                    self.options.windows_in_flight
                ):
                    cut = await anext(windows, None)
                    if cut is None:
                        progress.exhausted = True
                    else:
                        await self._queue(progress, cut, request)
                while (ready := progress.next_ready()) is not None:
                    yield ready
                if progress.done:
                    logger.info("upload %s: %d windows", upload_id, progress.windows)
                    return
                if time.monotonic() > deadline:
                    raise UploadTimedOut(f"upload {upload_id} waited past its deadline")
                if await gone():
                    raise ClientGone(f"upload {upload_id}: the client hung up")
                await self._wait_for_results(progress)
        finally:
            await self._redis.delete(live, results)

    async def _queue(self, progress: _Progress, cut: CutWindow, request: UploadRequest) -> None:
        index = progress.windows
        progress.windows += 1
        if not cut.window.speech:
            progress.arrived[index] = FileWindowResult(
                upload_id=progress.upload_id,
                window_index=index,
                language="",
                language_probability=0.0,
            )
            return
        job = FileWindowJob(
            upload_id=progress.upload_id,
            window_index=index,
            start_sample=cut.window.start,
            pcm=cut.pcm,
            task=request.task,
            language=request.language,
            prompt=request.prompt,
            temperature=request.temperature,
            word_timestamps=request.word_timestamps,
            enqueued_at=time.time(),
        )
        fields: Any = job.encode()
        await self._redis.xadd(keys.FILE_JOBS_STREAM, fields)
        progress.waiting.add(index)

    async def _wait_for_results(self, progress: _Progress) -> None:
        stream = keys.upload_results(progress.upload_id)
        response: Any = await self._redis.xread({stream: progress.last_id}, block=READ_BLOCK_MS)
        if time.monotonic() - progress.renewed_at > LIVE_TTL_S / 3:
            await self._redis.expire(keys.upload_live(progress.upload_id), LIVE_TTL_S)
            progress.renewed_at = time.monotonic()
        for _, entries in response or ():
            for entry_id, fields in entries:
                progress.last_id = entry_id
                try:
                    result = FileWindowResult.decode(fields[b"result"])
                except (SchemaError, KeyError):
                    logger.exception("upload %s: undecodable window result", progress.upload_id)
                    continue
                progress.arrived_result(result)


class _Progress:
    """Where one upload stands: windows taken, queued and waiting, and results to hand on."""

    def __init__(self, upload_id: str) -> None:
        self.upload_id = upload_id
        self.windows = 0
        """Windows taken from the recording so far."""
        self.exhausted = False
        """The recording has no more windows."""
        self.waiting: set[int] = set()
        """Windows queued for a transcriber whose results have not come."""
        self.arrived: dict[int, FileWindowResult] = {}
        self.following = 0
        """The next window to hand on."""
        self.last_id: bytes | str = b"0-0"
        self.renewed_at = time.monotonic()
        """When the upload's live key was last given its full lapse."""

    def arrived_result(self, result: FileWindowResult) -> None:
        index = result.window_index
        if index in self.waiting:  # a window done twice counts once
            self.waiting.discard(index)
            self.arrived[index] = result

    def next_ready(self) -> FileWindowResult | None:
        result = self.arrived.pop(self.following, None)
        if result is not None:
            self.following += 1
        return result

    @property
    def done(self) -> bool:
        return self.exhausted and self.following == self.windows
