from __future__ import annotations

import numpy as np
import pytest
import soxr

from shared.audio import Encoding, PcmConverter
from shared.resampler import StreamResampler, rate_ratio

RATES = [8000, 11025, 22050, 24000, 44100, 48000]


def noise(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(rate * seconds)) * 0.1).astype(
        np.float32
    )


def streamed(resampler: StreamResampler, chunks: list[np.ndarray]) -> np.ndarray:
    parts = [resampler.resample_chunk(chunk) for chunk in chunks]
    parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.concatenate(parts)


def below(samples: np.ndarray, hz: float, rate: int = 16000) -> np.ndarray:
    spectrum = np.fft.rfft(samples)
    spectrum[np.fft.rfftfreq(samples.size, 1 / rate) > hz] = 0
    return np.fft.irfft(spectrum, samples.size)


@pytest.mark.parametrize("rate", RATES)
def test_any_chunking_gives_the_one_shot_output_and_its_length(rate: int) -> None:
    samples = noise(rate, 1.3)
    whole = StreamResampler(rate, 16000).resample_chunk(samples, last=True)
    cuts = np.sort(np.random.default_rng(rate).choice(samples.size, 40, replace=False))
    chunked = streamed(StreamResampler(rate, 16000), np.split(samples, cuts))
    up, down = rate_ratio(rate, 16000)
    assert whole.size == -(-samples.size * up // down)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


@pytest.mark.parametrize("rate", RATES)
def test_in_band_it_matches_libsoxr_very_high_quality(rate: int) -> None:
    samples = noise(rate, 2.0, seed=1)
    ours = StreamResampler(rate, 16000).resample_chunk(samples, last=True)
    reference = soxr.resample(samples, rate, 16000, "VHQ")
    assert ours.size == reference.size
    band = min(rate, 16000) / 2 * 0.85
    error = below(ours, band) - below(reference, band)
    snr_db = 10 * np.log10(np.sum(below(reference, band) ** 2) / np.sum(error**2))
    assert snr_db > 60


@pytest.mark.parametrize(("rate", "hz"), [(48000, 9000.0), (24000, 10000.0), (44100, 12000.0)])
def test_what_lies_above_8_khz_does_not_fold_back(rate: int, hz: float) -> None:
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    out = StreamResampler(rate, 16000).resample_chunk(tone, last=True)
    residue_db = 20 * np.log10(np.std(out[400:-400]) / np.std(tone))
    assert residue_db < -70


@pytest.mark.parametrize("rate", [8000, 24000, 44100, 48000])
def test_an_impulse_comes_out_at_its_own_time(rate: int) -> None:
    samples = np.zeros(rate // 2, np.float32)
    at = rate // 4  # 0.25 s
    samples[at] = 1.0
    out = StreamResampler(rate, 16000).resample_chunk(samples, last=True)
    assert abs(int(np.argmax(np.abs(out))) - at * 16000 / rate) <= 1


@pytest.mark.parametrize(
    ("rate", "most_ms"), [(8000, 6.0), (24000, 3.0), (44100, 3.0), (48000, 3.0)]
)
def test_each_chunk_comes_out_at_once_but_for_half_the_filter(rate: int, most_ms: float) -> None:
    resampler = StreamResampler(rate, 16000)
    assert resampler.delay_s * 1000 < most_ms
    chunk = noise(rate, 0.05)
    emitted = 0
    for k in range(1, 41):
        emitted += resampler.resample_chunk(chunk).size
        expected = k * 800  # 50 ms at 16 kHz
        assert expected - emitted <= resampler.delay_s * 16000 + 1


def test_a_ratio_needing_too_many_phases_is_refused_and_the_converter_falls_back() -> None:
    with pytest.raises(ValueError, match="phases"):
        StreamResampler(47999, 16000)
    converter = PcmConverter(47999, Encoding.PCM_F32LE)
    samples = noise(47999, 1.0)
    out = converter.convert(samples.tobytes()) + converter.flush()
    assert abs(len(out) // 2 - 16000) <= 2


def test_nothing_after_the_end() -> None:
    resampler = StreamResampler(24000, 16000)
    assert resampler.resample_chunk(np.zeros(0, np.float32), last=True).size == 0
    with pytest.raises(ValueError, match="ended"):
        resampler.resample_chunk(np.zeros(10, np.float32))
