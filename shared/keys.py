"""Redis key and channel names, in one place.

Per-session keys share the hash tag ``{session_id}`` so a session's keys live together and
the multi-key scripts stay valid on a sharded Redis.
"""

from __future__ import annotations

SESSIONS_STREAM = "ss:sessions"
"""Announcements of new sessions; segmenters claim them through a consumer group."""
SEGMENTER_GROUP = "segmenters"
FINAL_JOBS_STREAM = "ss:jobs:final"
"""Final and speculative transcription jobs: never shed."""
TURN_JOBS_STREAM = "ss:jobs:turn"
"""Turn jobs: never shed; after finals, before partials."""
PARTIAL_JOBS_STREAM = "ss:jobs:partial"
"""Partial jobs: capped, latest-wins, may be shed."""
TRANSCRIBER_GROUP = "transcribers"
DEAD_JOBS_STREAM = "ss:jobs:dead"
"""Final jobs that failed every attempt, with the reason; capped."""


def audio_stream(session_id: str) -> str:
    return f"ss:{{{session_id}}}:audio"


def session_channel(session_id: str) -> str:
    return f"ss:{{{session_id}}}:events"


def session_state(session_id: str) -> str:
    """Hash with the segmenter's current utterance ``u``, speculation ``rev``, partial ``pseq``."""
    return f"ss:{{{session_id}}}:state"


def language_history(session_id: str) -> str:
    """List of the languages chosen for a detecting session's finals and turns, newest first:
    the prior of the next choice (``transcriber.language_choice``)."""
    return f"ss:{{{session_id}}}:languages"


def turn_context(session_id: str) -> str:
    """Hash: the speaker's recent settled text ``text`` (the next turn's prompt) and the
    ``turn`` it ends with."""
    return f"ss:{{{session_id}}}:context"


def commit_key(session_id: str, utterance_index: int) -> str:
    return f"ss:{{{session_id}}}:commit:{utterance_index}"


def speculation_key(session_id: str, utterance_index: int, revision: int) -> str:
    return f"ss:{{{session_id}}}:spec:{utterance_index}:{revision}"


def _room_tag(room: str) -> str:
    """Room ids are arbitrary user strings: hex keeps them from breaking key syntax."""
    return room.encode().hex()


def room_channel(room: str) -> str:
    return f"ss:room:{{{_room_tag(room)}}}:events"


def room_members(room: str) -> str:
    """Hash of the room's participants: session id -> encoded :class:`Participant`."""
    return f"ss:room:{{{_room_tag(room)}}}:members"


def room_alive(room: str) -> str:
    """Sorted set of the room's participants: session id -> when its membership lapses
    (epoch seconds) unless its connection renews it; a lapsed one is a ghost, removed."""
    return f"ss:room:{{{_room_tag(room)}}}:alive"


PARTS_INDEX = "ss:parts"
"""Set of the ids of every part that has sent a heartbeat; stale ids are pruned by readers."""


def part_heartbeat(part_id: str) -> str:
    """The part's latest :class:`PartHeartbeat`, expiring unless renewed."""
    return f"ss:part:{part_id}"


FINAL_LATENCIES = "ss:stats:final-latency"
"""Recent :class:`LatencySample` entries, newest first, capped."""


LIVE_SESSIONS = "ss:sessions:live"
"""Sorted set of the sessions being segmented (score: when opened), for takeover."""


def session_owner(session_id: str) -> str:
    """The owning segmenter's name, with a lease its heartbeat renews."""
    return f"ss:{{{session_id}}}:owner"


def session_checkpoint(session_id: str) -> str:
    """The session's latest ``segmenter.checkpoint.SegmenterCheckpoint`` (a hash)."""
    return f"ss:{{{session_id}}}:checkpoint"


def results_log(session_id: str) -> str:
    """Stream of the session's finals, failures, translations and end of segmentation, as
    published: a resumed connection reads what was published while no node listened."""
    return f"ss:{{{session_id}}}:results"


def resumable_session(session_id: str) -> str:
    """The session's ``ingest.resume_record.ResumableSession`` and client samples stored
    (a hash)."""
    return f"ss:{{{session_id}}}:client"


def attachment(session_id: str) -> str:
    """Which connection holds the session: its nonce, expiring a resume window after the
    holder stops renewing it. Absent: the window has passed and the session is abandoned."""
    return f"ss:{{{session_id}}}:attached"


def outbox(session_id: str) -> str:
    """Stream of every message sent to the client, with id ``<seq>-0``, written before it is
    sent; trimmed once the client has confirmed receipt (a pong after the message)."""
    return f"ss:{{{session_id}}}:outbox"


def delivered_marks(session_id: str) -> str:
    """Set of the marks of messages in the outbox that are outside the delivery order
    (translations, other participants' finals), so a resume sends none of them twice."""
    return f"ss:{{{session_id}}}:marks"


def translation_targets(session_id: str) -> str:
    """The session's ``shared.schema.TranslationTargets``, set by its ingest connection,
    expiring :data:`TRANSLATION_TARGETS_TTL_S` after its last change."""
    return f"ss:{{{session_id}}}:targets"


TRANSLATION_TARGETS_TTL_S = 24 * 3600


def translation_published(session_id: str, about: str | int, language: str) -> str:
    """Set once the translation of a final (its index) or a turn (``t<index>``) into
    ``language`` has been published: at most one message each, whatever retries happen."""
    return f"ss:{{{session_id}}}:tr:{about}:{language}"


TRANSLATION_PUBLISHED_TTL_S = 24 * 3600


def room_log(room: str) -> str:
    """Stream of the room's finals, turns and translations as shared, capped (about
    :data:`ROOM_LOG_KEPT` entries, gone :data:`ROOM_LOG_TTL_S` after the last): a participant
    resuming reads the others' it missed, one joining the room's recent history."""
    return f"ss:room:{{{_room_tag(room)}}}:log"


ROOM_LOG_KEPT = 1000
ROOM_LOG_TTL_S = 24 * 3600


TRANSLATION_JOB_FUNCTION = "translator.jobs.translate"
"""The rq job function ingest enqueues by name and the translator serves (rq imports it)."""

FILE_JOBS_STREAM = "ss:jobs:file"
"""Windows of uploaded recordings: read only when no live job waits; reclaimed like finals."""


def upload_live(upload_id: str) -> str:
    """Present while the upload's request waits for its windows (it renews the expiry): a
    transcriber skips the windows of an upload whose client has gone."""
    return f"ss:upload:{{{upload_id}}}:live"


def upload_results(upload_id: str) -> str:
    """Stream of the upload's transcribed windows (any order; a window may come twice)."""
    return f"ss:upload:{{{upload_id}}}:results"
