"""``GET /v1/languages``: what this server's model speaks, and how it translates, for the
page's selectors and any client that asks (public: it holds nothing a token guards)."""

from __future__ import annotations

import msgspec

from shared.languages import WHISPER_LANGUAGES, spoken_languages

LANGUAGES_PATH = "/v1/languages"


class LanguagesInfo(msgspec.Struct, frozen=True):
    model: str
    multilingual: bool
    spoken: tuple[str, ...]
    """The codes ``language=`` takes."""
    detect: bool
    """Whether ``language=auto`` is served."""
    read: tuple[str, ...]
    """Codes a reader may name (``read=``); any other language code is taken too, for the
    translator's backend to serve."""
    whisper_translation: bool
    """Whether turns are translated into English by the transcribers' own model."""


def languages_body(model: str, *, english_only: bool, whisper_translation: bool) -> bytes:
    info = LanguagesInfo(
        model=model,
        multilingual=not english_only,
        spoken=spoken_languages(english_only=english_only),
        detect=not english_only,
        read=WHISPER_LANGUAGES,
        whisper_translation=whisper_translation,
    )
    return msgspec.json.encode(info)
