"""Who reads what in a room, without I/O: which languages a speaker's turns are translated
into, and which translations each participant receives.

Each participant may name the language it reads (``read=``); a speaker may also ask for
translations of its own words (``translate=``). A speaker's turn is translated once for the
whole room into every language its members read and the speaker asked for, except the
language it was spoken in. A participant that reads a language receives, of the others'
translations, only those into it; one that names none receives them all (as before reading
languages existed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ingest.protocol import StreamParams
from shared.schema import Participant


def base_language(code: str) -> str:
    """``pt-BR`` -> ``pt``: Whisper names a language by its base code."""
    return code.split("-", 1)[0].lower()


def same_language(a: str, b: str) -> bool:
    return base_language(a) == base_language(b)


def own_targets(params: StreamParams, source: str) -> tuple[str, ...]:
    """The translations of its own turn the speaker's client receives."""
    wanted = (*params.translate, params.read)
    return tuple(t for t in dict.fromkeys(wanted) if t and not same_language(t, source))


def room_languages(params: StreamParams, members: Iterable[Participant]) -> tuple[str, ...]:
    """Every language the speaker's turns go into, most wanted first: its own asks, then its
    room's readers' languages by how many read each (a budget that cannot pay for all of them
    serves the most readers)."""
    readers = Counter(m.read for m in members if m.read)
    by_readers = sorted(readers, key=lambda code: -readers[code])  # ties: in joining order
    wanted = (*params.translate, params.read, *by_readers)
    return tuple(t for t in dict.fromkeys(wanted) if t)


def translation_targets(
    params: StreamParams, members: Iterable[Participant], source: str
) -> tuple[str, ...]:
    """The languages one turn spoken in ``source`` is translated into, once for the room."""
    return tuple(t for t in room_languages(params, members) if not same_language(t, source))


def receives(params: StreamParams, *, own: bool, target: str) -> bool:
    """Whether a participant receives a translation into ``target`` (``own``: of its own
    words)."""
    if own and target in params.translate:
        return True
    if params.read:
        return same_language(target, params.read)
    return not (own and params.translate)
