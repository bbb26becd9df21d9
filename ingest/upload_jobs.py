"""An upload's windows through Redis: queued for the transcribers (below every live job),
their results read back in window order while the upload is kept alive."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from ingest import logger
from ingest.options import UploadOptions
from ingest.upload_audio import Window
from shared import keys
from shared.errors import SchemaError
from shared.file_jobs import FileTask, FileWindowJob, FileWindowResult

LIVE_TTL_S = 30
"""The upload's live key lapses this long after its request stopped waiting."""
READ_BLOCK_MS = 5000


@dataclass(frozen=True, slots=True)
class UploadRequest:
    task: FileTask
    language: str | None
    prompt: str
    temperature: float
    word_timestamps: bool


class QueueFull(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the transcription queue is full")
        self.retry_after_s = retry_after_s


class UploadTimedOut(Exception):
    pass


class UploadQueue:
    def __init__(self, client: redis.asyncio.Redis, options: UploadOptions) -> None:
        self._redis = client
        self.options = options

    async def transcribe(
        self, pcm: bytes, windows: list[Window], request: UploadRequest
    ) -> AsyncIterator[FileWindowResult]:
        """Each window's result, in window order (windows without speech come back empty at
        once). Leaving the iteration early abandons the upload: transcribers skip the rest."""
        upload_id = secrets.token_hex(12)
        spoken = [(i, w) for i, w in enumerate(windows) if w.speech]
        queued = int(await self._redis.xlen(keys.FILE_JOBS_STREAM))
        if queued + len(spoken) > self.options.max_queued_windows:
            raise QueueFull(self.options.retry_after_s)
        live, results = keys.upload_live(upload_id), keys.upload_results(upload_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(live, b"1", ex=LIVE_TTL_S)
        now = time.time()
        for index, window in spoken:
            job = FileWindowJob(
                upload_id=upload_id,
                window_index=index,
                start_sample=window.start,
                pcm=pcm[window.start * 2 : window.end * 2],
                task=request.task,
                language=request.language,
                prompt=request.prompt,
                temperature=request.temperature,
                word_timestamps=request.word_timestamps,
                enqueued_at=now,
            )
            fields: Any = job.encode()
            pipe.xadd(keys.FILE_JOBS_STREAM, fields)
        await pipe.execute()
        logger.info(
            "upload %s: %d windows queued (%d silent)",
            upload_id,
            len(spoken),
            len(windows) - len(spoken),
        )
        try:
            async for result in self._in_order(upload_id, windows):
                yield result
        finally:
            await self._redis.delete(live, results)

    async def _in_order(
        self, upload_id: str, windows: list[Window]
    ) -> AsyncIterator[FileWindowResult]:
        live, stream = keys.upload_live(upload_id), keys.upload_results(upload_id)
        arrived: dict[int, FileWindowResult] = {
            i: FileWindowResult(
                upload_id=upload_id, window_index=i, language="", language_probability=0.0
            )
            for i, w in enumerate(windows)
            if not w.speech
        }
        deadline = time.monotonic() + self.options.result_timeout_s
        renewed = time.monotonic()
        last_id = b"0-0"
        following = 0
        while following < len(windows):
            while following in arrived:
                yield arrived.pop(following)
                following += 1
            if following == len(windows):
                return
            if time.monotonic() > deadline:
                raise UploadTimedOut(f"upload {upload_id} waited past its deadline")
            if time.monotonic() - renewed > LIVE_TTL_S / 3:
                await self._redis.expire(live, LIVE_TTL_S)
                renewed = time.monotonic()
            response: Any = await self._redis.xread({stream: last_id}, block=READ_BLOCK_MS)
            for _, entries in response or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    try:
                        result = FileWindowResult.decode(fields[b"result"])
                    except (SchemaError, KeyError):
                        logger.exception("upload %s: undecodable window result", upload_id)
                        continue
                    if result.window_index >= following:  # a window done twice counts once
                        arrived.setdefault(result.window_index, result)
