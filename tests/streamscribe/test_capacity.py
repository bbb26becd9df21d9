"""The capacity search's variants: settings named as the parts read them, checked up front."""

from __future__ import annotations

import re

import pytest

from shared.errors import ConfigError
from streamscribe.benchmarks.capacity import Variant, parse_variant


def test_a_variant_names_settings_as_their_environment_variables() -> None:
    variant = parse_variant("partial_model_share=1.0, STREAMSCRIBE_CPU_THREADS=2")
    assert variant == Variant(
        (("STREAMSCRIBE_PARTIAL_MODEL_SHARE", "1.0"), ("STREAMSCRIBE_CPU_THREADS", "2"))
    )
    assert variant.name == ("STREAMSCRIBE_PARTIAL_MODEL_SHARE=1.0,STREAMSCRIBE_CPU_THREADS=2")
    assert Variant(()).name == "as configured"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no_such_setting=1", "'no_such_setting' is not a setting"),
        ("partial_model_share", "is not a setting (NAME=VALUE)"),
        ("partial_model_share=2", "less than or equal to 1"),
        ("partial_model_share=lots", "valid number"),
        (" , ", "needs NAME=VALUE"),
        ("batch_size=4", "give batch sizes with --batch-sizes"),
    ],
)
def test_a_bad_variant_is_refused_before_any_pipeline_starts(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        parse_variant(text)
