"""One rooted error hierarchy for every part of streamscribe."""

from __future__ import annotations


class StreamscribeError(Exception):
    """Root of every error streamscribe raises on purpose."""


class ConfigError(StreamscribeError):
    """A setting is missing or invalid; the message names it."""


class SchemaError(StreamscribeError):
    """A message between parts could not be decoded (wrong version, missing field, bad type)."""


class AudioFormatError(StreamscribeError):
    """Audio bytes that do not match the declared encoding."""


class ModelLoadError(StreamscribeError):
    """The speech model could not be found or loaded."""


class ProtocolError(StreamscribeError):
    """A client broke protocol v1: carries the error code and the close code to answer with."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


class ClientError(StreamscribeError):
    """The streaming client could not read its input or reach the server."""
