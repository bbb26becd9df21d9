"""Translation backends: Amazon Bedrock (Converse API) and OpenAI-compatible chat completions.

Both retry throttling, unavailability and timeouts with exponential backoff and jitter
(botocore's "standard" retry mode for Bedrock; the same policy by hand for the other), then
raise :class:`TranslationError` with a stable ``code``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3

from shared.errors import StreamscribeError
from shared.resilience import Delays
from translator import logger
from translator.prompt import system_prompt


class TranslationError(StreamscribeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Translator(Protocol):
    def translate(self, text: str, source: str, target: str) -> str: ...


@dataclass(frozen=True, slots=True)
class BedrockOptions:
    model_id: str
    region: str
    endpoint_url: str | None
    max_attempts: int
    timeout_s: float
    max_tokens: int = 1024


class BedrockTranslator:
    """Calls ``bedrock-runtime`` Converse through boto3 (SigV4, retries, error parsing)."""

    def __init__(self, options: BedrockOptions) -> None:
        import boto3
        from botocore.config import Config

        self.options = options
        self._client: Any = boto3.client(
            "bedrock-runtime",
            region_name=options.region,
            endpoint_url=options.endpoint_url or None,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": options.max_attempts},
                connect_timeout=options.timeout_s,
                read_timeout=options.timeout_s,
            ),
        )

    def translate(self, text: str, source: str, target: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        if not text.strip():
            return ""
        try:
            response = self._client.converse(
                modelId=self.options.model_id,
                system=[{"text": system_prompt(source, target)}],
                messages=[{"role": "user", "content": [{"text": text}]}],
                inferenceConfig={"maxTokens": self.options.max_tokens, "temperature": 0.0},
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise TranslationError(
                str(error.get("Code", "bedrock_error")), str(error.get("Message", exc))
            ) from exc
        except ResponseParserError as exc:
            raise TranslationError("bad_response", str(exc)) from exc
        except BotoCoreError as exc:
            code = "timeout" if "timeout" in type(exc).__name__.lower() else "bedrock_unreachable"
            raise TranslationError(code, str(exc)) from exc
        try:
            parts = response["output"]["message"]["content"]
            return " ".join(str(p["text"]) for p in parts if "text" in p).strip()
        except (KeyError, TypeError) as exc:
            raise TranslationError("bad_response", f"unexpected Converse response: {exc}") from exc


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    base_url: str
    model: str
    api_key: str
    max_attempts: int
    timeout_s: float


_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_DELAY_S = 20.0
"""The longest wait between attempts (botocore's standard mode caps at 20 s too)."""


class OpenAICompatibleTranslator:
    """``POST {base_url}/chat/completions`` (vLLM, llama.cpp server, Ollama, ...)."""

    def __init__(self, options: OpenAIOptions, *, base_delay_s: float = 0.2) -> None:
        self.options = options
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=options.timeout_s, read=options.timeout_s),
            retries=False,
        )
        self._base_delay_s = base_delay_s

    def translate(self, text: str, source: str, target: str) -> str:
        if not text.strip():
            return ""
        body = json.dumps(
            {
                "model": self.options.model,
                "temperature": 0,
                "messages": [
                    {"role": "system", "content": system_prompt(source, target)},
                    {"role": "user", "content": text},
                ],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        url = self.options.base_url.rstrip("/") + "/chat/completions"
        delays = Delays(first_s=self._base_delay_s, max_s=MAX_RETRY_DELAY_S, jitter=True)
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                response = self._http.request("POST", url, body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                failure = TranslationError(
                    "timeout" if "timed out" in str(exc).lower() else "unreachable", str(exc)
                )
            else:
                if response.status == 200:
                    return _completion_text(response.data)
                failure = TranslationError(
                    f"http_{response.status}", response.data[:200].decode(errors="replace")
                )
                if response.status not in _RETRYABLE_STATUS:
                    raise failure
            if attempt == self.options.max_attempts:
                raise failure
            delay = delays.next()
            logger.warning(
                "translation attempt %d failed (%s); retrying in %.2f s",
                attempt,
                failure.code,
                delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")


def _completion_text(data: bytes) -> str:
    try:
        parsed = json.loads(data)
        return str(parsed["choices"][0]["message"]["content"]).strip()
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise TranslationError("bad_response", f"unexpected chat completion: {exc}") from exc
