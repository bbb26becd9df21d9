"""Both backends through their real HTTP clients against local servers of the same wire format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.translator.fake_services import FakeService, translated
from translator.backends import (
    BedrockOptions,
    BedrockTranslator,
    OpenAICompatibleTranslator,
    OpenAIOptions,
    TranslationError,
)
from translator.prompt import system_prompt

MODEL = "amazon.nova-micro-v1:0"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AWS_DEFAULT_REGION": "eu-west-2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield


def bedrock(service: FakeService, *, attempts: int = 4, timeout: float = 5.0) -> BedrockTranslator:
    return BedrockTranslator(BedrockOptions(MODEL, "eu-west-2", service.url, attempts, timeout))


def test_bedrock_request_and_answer() -> None:
    with FakeService("bedrock") as service:
        assert bedrock(service).translate("Ask not.", "en", "cy") == translated("Ask not.")
    [request] = service.requests
    assert request["path"] == f"/model/{MODEL}/converse"
    assert "bedrock" in request["headers"]["Authorization"]  # signed for the service
    body = request["body"]
    assert body["system"] == [{"text": system_prompt("en", "cy")}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Ask not."}]}]
    assert body["inferenceConfig"]["temperature"] == 0.0


def test_bedrock_retries_throttling_then_succeeds() -> None:
    with FakeService("bedrock", ["throttle", "unavailable"]) as service:
        assert bedrock(service).translate("Hello", "en", "fr") == translated("Hello")
    assert len(service.requests) == 3


def test_bedrock_gives_up_with_the_service_error_code() -> None:
    with (
        FakeService("bedrock", ["error"] * 5) as service,
        pytest.raises(TranslationError) as caught,
    ):
        bedrock(service, attempts=3).translate("Hello", "en", "fr")
    assert caught.value.code == "InternalServerException"
    assert len(service.requests) == 3


def test_bedrock_slow_answer_times_out_and_malformed_body_is_reported() -> None:
    with (
        FakeService("bedrock", ["slow:1.5", "slow:1.5"]) as service,
        pytest.raises(TranslationError) as slow,
    ):
        bedrock(service, attempts=2, timeout=0.5).translate("Hello", "en", "fr")
    assert slow.value.code == "timeout"
    with (
        FakeService("bedrock", ["malformed"]) as service,
        pytest.raises(TranslationError) as malformed,
    ):
        bedrock(service, attempts=1).translate("Hello", "en", "fr")
    assert malformed.value.code == "bad_response"


def test_empty_text_is_not_sent() -> None:
    with FakeService("bedrock") as service:
        assert bedrock(service).translate("  ", "en", "cy") == ""
    assert service.requests == []


def openai(service: FakeService, attempts: int = 4) -> OpenAICompatibleTranslator:
    options = OpenAIOptions(service.url + "/v1", "llama-3-8b", "key-123", attempts, 2.0)
    return OpenAICompatibleTranslator(options, base_delay_s=0.01)


def test_openai_compatible_request_retries_and_errors() -> None:
    with FakeService("openai", ["throttle", "error"]) as service:
        assert openai(service).translate("Hello", "en", "es") == translated("Hello")
    assert len(service.requests) == 3
    last = service.requests[-1]
    assert last["headers"]["Authorization"] == "Bearer key-123"
    assert last["body"]["model"] == "llama-3-8b"
    with FakeService("openai", ["error"] * 3) as service, pytest.raises(TranslationError) as caught:
        openai(service, attempts=3).translate("Hello", "en", "es")
    assert caught.value.code == "http_500"
    with (
        FakeService("openai", ["malformed"]) as service,
        pytest.raises(TranslationError, match="bad_response"),
    ):
        openai(service).translate("Hello", "en", "es")
