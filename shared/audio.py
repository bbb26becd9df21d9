"""Audio conversion for the pipeline: any supported client format to 16 kHz mono s16le."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import soxr

from shared.errors import AudioFormatError
from shared.resampler import StreamResampler

PIPELINE_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class Encoding(StrEnum):
    PCM_S16LE = "pcm_s16le"
    PCM_F32LE = "pcm_f32le"
    MULAW = "mulaw"
    """G.711 mu-law, one byte a sample (telephony, e.g. 8 kHz)."""
    ALAW = "alaw"
    """G.711 A-law, one byte a sample."""

    @property
    def sample_width(self) -> int:
        return _SAMPLE_WIDTHS[self]


_SAMPLE_WIDTHS = {Encoding.PCM_S16LE: 2, Encoding.PCM_F32LE: 4, Encoding.MULAW: 1, Encoding.ALAW: 1}


def _mulaw_table() -> np.ndarray:
    """The 256 16-bit linear values of G.711 mu-law (ITU-T G.711)."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    linear: np.ndarray = np.where(code & 0x80, -magnitude, magnitude).astype("<i2")
    return linear


def _alaw_table() -> np.ndarray:
    """The 256 16-bit linear values of G.711 A-law."""
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = (code & 0x0F) << 4
    magnitude = np.where(
        exponent == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(exponent - 1, 0)
    )
    linear: np.ndarray = np.where(code & 0x80, magnitude, -magnitude).astype("<i2")
    return linear


_G711 = {Encoding.MULAW: _mulaw_table(), Encoding.ALAW: _alaw_table()}


def float_to_s16(samples: np.ndarray) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0)
    pcm: bytes = (clipped * 32767.0).round().astype("<i2").tobytes()
    return pcm


def s16_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _stream_resampler(sample_rate: int) -> StreamResampler | soxr.ResampleStream:
    """A low-delay polyphase filter for every common rate; libsoxr for a rate whose ratio to
    16 kHz needs too many phases (47999 Hz), at the cost of its block hold-back."""
    try:
        return StreamResampler(sample_rate, PIPELINE_SAMPLE_RATE)
    except ValueError:
        return soxr.ResampleStream(
            sample_rate, PIPELINE_SAMPLE_RATE, 1, dtype="float32", quality="HQ"
        )


class PcmConverter:
    """Streams client PCM to 16 kHz mono s16le, keeping resampler state between chunks.

    One per session. Resampling holds back a few milliseconds (:mod:`shared.resampler`); 16 kHz
    s16 input passes through untouched.
    """

    def __init__(self, sample_rate: int, encoding: Encoding) -> None:
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise AudioFormatError(
                f"sample_rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}, got {sample_rate}"
            )
        self.sample_rate = sample_rate
        self.encoding = encoding
        self._resampler: StreamResampler | soxr.ResampleStream | None = None
        if sample_rate != PIPELINE_SAMPLE_RATE:
            self._resampler = _stream_resampler(sample_rate)

    def convert(self, payload: bytes) -> bytes:
        width = self.encoding.sample_width
        if len(payload) % width:
            raise AudioFormatError(
                f"{len(payload)} bytes is not a whole number of {width}-byte samples"
            )
        if self._resampler is None and self.encoding is Encoding.PCM_S16LE:
            return payload
        table = _G711.get(self.encoding)
        if self._resampler is None and table is not None:
            linear: bytes = table[np.frombuffer(payload, dtype=np.uint8)].tobytes()
            return linear
        samples = self._to_float(payload)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return float_to_s16(samples)

    def flush(self) -> bytes:
        """The resampler's delayed tail, at end of stream."""
        if self._resampler is None:
            return b""
        return float_to_s16(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))

    def _to_float(self, payload: bytes) -> np.ndarray:
        if self.encoding is Encoding.PCM_S16LE:
            return s16_to_float(payload)
        table = _G711.get(self.encoding)
        if table is not None:
            return s16_to_float(table[np.frombuffer(payload, dtype=np.uint8)].tobytes())
        samples = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise AudioFormatError("pcm_f32le audio contains NaN or infinite samples")
        # beyond full scale is clipping anyway; unclipped, ±3.4e38 overflows the resampler
        return np.clip(samples, -1.0, 1.0)
