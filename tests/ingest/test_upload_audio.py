"""Uploads decoded by PyAV from the formats users send, and cut into windows at pauses."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from ingest.upload_audio import (
    UndecodableUpload,
    Window,
    WindowCutter,
    cut_windows,
    decoded_pcm,
    upload_windows,
)
from streamscribe.client import read_audio
from tests.conftest import DATA

RATE = 16000
LONG = read_audio(DATA / "long-ljspeech-LJ001-0001-0008.wav").pcm  # 50.3 s of read speech
PAUSED = read_audio(DATA / "vad-pause-3s-1988-24833-0000-0002.wav").pcm  # silence 3.32-6.32 s


def decode_upload(file: io.BytesIO, *, max_duration_s: float) -> bytes:
    return b"".join(decoded_pcm(file, max_duration_s=max_duration_s))


def encoded(pcm: bytes, container: str, codec: str, rate: int, layout: str = "stereo") -> bytes:
    """``pcm`` (16 kHz mono s16) written by FFmpeg as a user's file would be."""
    samples = np.frombuffer(pcm, "<i2")
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as file:
        stream = file.add_stream(codec, rate=rate, layout=layout)  # type: ignore[call-overload]
        source = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        source.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            for packet in stream.encode(frame):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("wav", "pcm_s16le", 16000), ("flac", "flac", 44100), ("mp3", "libmp3lame", 44100),
     ("ogg", "libopus", 48000), ("adts", "aac", 22050)],
)  # fmt: skip
def test_common_formats_decode_to_16k_mono_of_the_same_length(
    container: str, codec: str, rate: int
) -> None:
    pcm = decode_upload(io.BytesIO(encoded(PAUSED, container, codec, rate)), max_duration_s=60)
    seconds = len(pcm) / 2 / RATE
    assert abs(seconds - len(PAUSED) / 2 / RATE) < 0.1, seconds  # codec padding at most
    decoded = np.frombuffer(pcm, "<i2").astype(np.float64)
    silence = decoded[int(4.0 * RATE) : int(5.5 * RATE)]
    speech = decoded[int(0.5 * RATE) : int(3.0 * RATE)]
    assert np.sqrt(np.mean(speech**2)) > 20 * (np.sqrt(np.mean(silence**2)) + 1)


def test_a_recording_longer_than_allowed_is_refused() -> None:
    with pytest.raises(UndecodableUpload, match="seconds is longer than 20 seconds"):
        decode_upload(io.BytesIO(encoded(LONG, "flac", "flac", 16000, "mono")), max_duration_s=20)


def test_a_recording_declared_too_long_is_refused_before_any_of_it_is_decoded() -> None:
    """FLAC declares its length in its header: refused there, before the first piece."""
    pieces = decoded_pcm(
        io.BytesIO(encoded(LONG, "flac", "flac", 16000, "mono")), max_duration_s=20
    )
    with pytest.raises(UndecodableUpload, match="seconds is longer than 20 seconds"):
        next(pieces)


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_what_is_not_audio_is_refused(data: bytes) -> None:
    with pytest.raises(UndecodableUpload):
        decode_upload(io.BytesIO(data), max_duration_s=60)


def covers(windows: list[Window], samples: int) -> bool:
    ends = [w.start for w in windows[1:]] + [samples]
    return windows[0].start == 0 and all(w.end == e for w, e in zip(windows, ends, strict=True))


def test_long_speech_is_cut_at_pauses_into_windows_of_at_most_30_s() -> None:
    samples = len(LONG) // 2
    windows = cut_windows(LONG)
    assert len(windows) >= 2 and covers(windows, samples)
    assert all(w.end - w.start <= 30 * RATE for w in windows)
    assert all(w.speech for w in windows)
    audio = np.frombuffer(LONG, "<i2").astype(np.float64)
    for cut in (w.end for w in windows[:-1]):  # each cut falls where it is quiet
        around = audio[cut - 160 : cut + 160]
        assert np.sqrt(np.mean(around**2)) < 0.1 * np.sqrt(np.mean(audio**2)), cut / RATE


def test_a_pause_is_where_a_short_window_is_cut() -> None:
    windows = cut_windows(PAUSED, max_window_s=6.0, min_window_s=2.0)
    assert covers(windows, len(PAUSED) // 2)
    assert 3.32 * RATE < windows[0].end < 6.32 * RATE


def test_silence_is_marked_so_it_is_not_decoded() -> None:
    silence = bytes(2 * RATE * 70)
    windows = cut_windows(silence)
    assert covers(windows, RATE * 70) and not any(w.speech for w in windows)
    assert len(windows) == 4 and all(w.end - w.start <= 30 * RATE for w in windows)


def test_a_short_recording_is_one_window_with_its_odd_samples() -> None:
    assert cut_windows(PAUSED[: 2 * 16001]) == [Window(0, 16001, True)]
    assert cut_windows(bytes(2 * 1001)) == [Window(0, 1001, False)]
    assert cut_windows(PAUSED[: 2 * 100]) == [Window(0, 100, False)]  # under one VAD frame
    assert cut_windows(b"") == []


@pytest.mark.parametrize("piece", [1, 7, 480, 4801, 16000 * 7])
def test_windows_cut_as_the_audio_comes_are_those_of_the_whole(piece: int) -> None:
    """Fed in pieces of any size, the cutter holds at most a window and a VAD frame and cuts
    exactly where it cuts the whole recording."""
    whole = cut_windows(LONG, max_window_s=12.0, min_window_s=4.0)
    cutter = WindowCutter(max_window_s=12.0, min_window_s=4.0)
    cut = []
    for i in range(0, len(LONG), 2 * piece):
        cut += cutter.feed(LONG[i : i + 2 * piece])
        assert len(cutter._held) <= 2 * (12 * RATE + 480 + piece)
    cut += cutter.finish()
    assert [c.window for c in cut] == whole and len(whole) >= 4
    assert b"".join(c.pcm for c in cut) == LONG
    assert all(c.pcm == LONG[c.window.start * 2 : c.window.end * 2] for c in cut)


def test_an_upload_comes_out_window_by_window() -> None:
    file = io.BytesIO(encoded(LONG, "flac", "flac", 16000, "mono"))
    windows = upload_windows(file, max_duration_s=60, max_window_s=30)
    first = next(windows)
    assert first.window.start == 0 and first.window.end <= 30 * RATE
    rest = list(windows)
    assert rest and rest[-1].window.end == len(LONG) // 2
