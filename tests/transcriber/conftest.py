"""The real tiny.en model, loaded once for the transcriber's tests."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from streamscribe.options import model_options
from transcriber.model import SpeechModel


@pytest.fixture(scope="session")
def model() -> SpeechModel:
    return SpeechModel(model_options(Settings()))
