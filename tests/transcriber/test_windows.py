import numpy as np
import pytest

from transcriber.windows import (
    FULL_WINDOW_FRAMES,
    WindowOptions,
    content_frames,
    trimmed,
    window_frames,
)


def padded_features(content: int, *, batch: int | None = None) -> np.ndarray:
    """Log-mel-like features: ``content`` frames of non-zero values, zeros after."""
    shape = (80, FULL_WINDOW_FRAMES) if batch is None else (batch, 80, FULL_WINDOW_FRAMES)
    features = np.zeros(shape, np.float32)
    features[..., :content] = -0.5
    return features


def test_content_ends_at_the_last_frame_that_is_not_padding() -> None:
    features = padded_features(420)
    features[3, 419] = 0.0  # one zero bin does not make a frame padding
    assert content_frames(features) == 420


def test_content_of_a_batch_is_its_longest_row() -> None:
    features = padded_features(100, batch=3)
    features[1, :, :700] = 0.25
    assert content_frames(features) == 700


def test_the_full_window_is_never_cut() -> None:
    assert trimmed(padded_features(200), WindowOptions()).shape[-1] == FULL_WINDOW_FRAMES


@pytest.mark.parametrize(
    ("content", "expected"),
    [(0, 500), (120, 500), (420, 600), (401, 600), (2950, 3000), (3000, 3000)],
)
def test_window_is_floor_or_content_with_margin_rounded_up(content: int, expected: int) -> None:
    options = WindowOptions(floor_s=5.0, margin_s=1.0, step_s=1.0)
    assert window_frames(content, options) == expected


def test_trimmed_keeps_the_audio_and_the_margin() -> None:
    features = padded_features(420, batch=2)
    out = trimmed(features, WindowOptions(floor_s=2.0, margin_s=0.5))
    assert out.shape == (2, 80, 500)
    assert np.array_equal(out[..., :420], features[..., :420])
    assert out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    "kwargs", [{"floor_s": 0.5}, {"floor_s": 31.0}, {"margin_s": -1.0}, {"step_s": 0.0}]
)
def test_bad_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="encoder window"):
        WindowOptions(**kwargs)
