from __future__ import annotations

import numpy as np
import pytest

from shared.audio import Encoding, PcmConverter
from shared.errors import AudioFormatError


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * 16000 / len(samples))


def test_16k_s16_passes_through_unchanged() -> None:
    pcm = (tone(16000, 0.1) * 32767).astype("<i2").tobytes()
    assert PcmConverter(16000, Encoding.PCM_S16LE).convert(pcm) == pcm


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_pitch_and_duration_across_chunks(rate: int) -> None:
    converter = PcmConverter(rate, Encoding.PCM_F32LE)
    samples = tone(rate, 2.0)
    out = b""
    for chunk in np.array_split(samples, 37):  # odd chunk sizes, state kept between them
        out += converter.convert(chunk.astype("<f4").tobytes())
    out += converter.flush()
    assert abs(len(out) / 2 - 32000) <= 2
    assert abs(dominant_hz(out) - 440.0) < 2.0


def test_f32_is_clipped_and_non_finite_refused() -> None:
    converter = PcmConverter(16000, Encoding.PCM_F32LE)
    loud = np.array([2.0, -2.0, 0.5], dtype="<f4").tobytes()
    assert list(np.frombuffer(converter.convert(loud), "<i2")) == [32767, -32767, 16384]
    with pytest.raises(AudioFormatError, match="NaN"):
        converter.convert(np.array([np.nan], dtype="<f4").tobytes())


def test_partial_samples_and_bad_rates_are_refused() -> None:
    with pytest.raises(AudioFormatError, match="whole number"):
        PcmConverter(16000, Encoding.PCM_S16LE).convert(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError, match="whole number"):
        PcmConverter(16000, Encoding.PCM_F32LE).convert(b"\x00\x01")
    with pytest.raises(AudioFormatError, match="sample_rate"):
        PcmConverter(96000, Encoding.PCM_S16LE)


def test_f32_far_beyond_full_scale_resamples_to_full_scale_not_nan() -> None:
    converter = PcmConverter(48000, Encoding.PCM_F32LE)
    tone = np.sin(2 * np.pi * 1000 * np.arange(9600) / 48000)
    huge = (np.sign(tone) * 3.4e38).astype(np.float32)  # a 1 kHz square wave, beyond any scale
    out = np.frombuffer(converter.convert(huge.tobytes()), "<i2").astype(np.int32)
    assert out.size > 2000
    assert np.abs(out[500:-500]).max() >= 30000  # full scale, as the clipped square wave
    assert np.count_nonzero(np.abs(out[500:-500]) < 1000) < out.size // 4
    silent = np.frombuffer(
        PcmConverter(48000, Encoding.PCM_F32LE).convert(np.zeros(4800, np.float32).tobytes()),
        "<i2",
    )
    assert not silent.any()


def _mulaw_encode(sample: int) -> int:
    """G.711 mu-law encoding of one 16-bit sample, as ITU-T G.711 describes it."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def test_g711_decodes_as_the_standard_has_it() -> None:
    mulaw = PcmConverter(16000, Encoding.MULAW)
    # the ends of the mu-law table, and silence, which has two codes
    assert np.frombuffer(mulaw.convert(bytes([0x00, 0x80, 0xFF, 0x7F])), "<i2").tolist() == [
        -32124,
        32124,
        0,
        0,
    ]
    alaw = PcmConverter(16000, Encoding.ALAW)
    assert np.frombuffer(alaw.convert(bytes([0xD5, 0x55, 0xAA, 0x2A])), "<i2").tolist() == [
        8,
        -8,
        32256,
        -32256,
    ]


def test_mulaw_at_8k_comes_back_as_the_tone_it_encoded() -> None:
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 20000).astype(int)
    encoded = bytes(_mulaw_encode(int(s)) for s in tone)
    converter = PcmConverter(8000, Encoding.MULAW)
    pcm = np.frombuffer(converter.convert(encoded) + converter.flush(), "<i2")
    assert abs(len(pcm) - 16000) <= 16
    reference = np.sin(2 * np.pi * 440 * np.arange(len(pcm)) / 16000) * 20000
    middle = slice(1000, len(pcm) - 1000)
    spectrum = np.abs(np.fft.rfft(pcm[middle]))
    assert abs(np.argmax(spectrum) * 16000 / len(pcm[middle]) - 440) < 5
    assert abs(np.std(pcm[middle]) - np.std(reference[middle])) / np.std(reference) < 0.05
