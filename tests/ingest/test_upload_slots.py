"""Uploads one node serves at once, in all and per client."""

from __future__ import annotations

import pytest

from ingest.openai_request import OpenAIError
from ingest.upload_slots import UploadSlots


def test_slots_are_bounded_per_node_and_per_client_and_given_back_once() -> None:
    slots = UploadSlots(per_node=3, per_client=2)
    a1, _ = slots.take("a"), slots.take("a")
    with pytest.raises(OpenAIError) as per_client:
        slots.take("a")
    assert per_client.value.status == 429 and per_client.value.retry_after_s
    slots.take("b")
    with pytest.raises(OpenAIError, match="as many uploads as it can"):
        slots.take("c")
    a1.release()
    a1.release()  # a second release gives nothing back twice
    assert slots.in_use == 2
    slots.take("c")
    with pytest.raises(OpenAIError):
        slots.take("d")
