"""The resume record ingest nodes keep for a session."""

from __future__ import annotations

import json

import pytest

from ingest.resume_record import ResumableSession
from shared.errors import SchemaError


def test_resumable_session_round_trips_and_refuses_bad_fields() -> None:
    record = ResumableSession(
        "s1", "ab" * 32, 48000, "pcm_f32le", None, True, "Ana", "42", False, ("cy", "fr"), True, 1.5
    )
    assert ResumableSession.decode(record.encode()) == record
    obj = json.loads(record.encode())
    obj["translate"] = ["cy", 3]
    with pytest.raises(SchemaError, match="translate"):
        ResumableSession.decode(json.dumps(obj).encode())
    obj["translate"] = ["cy"]
    obj["v"] = 2
    with pytest.raises(SchemaError, match=r"Invalid enum value 2 - at `\$.v`"):
        ResumableSession.decode(json.dumps(obj).encode())
