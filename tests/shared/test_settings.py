"""Settings read from the environment, checked, and the Redis URL put together."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.errors import ConfigError
from shared.settings import Settings, require_redis_url


def test_a_password_setting_goes_into_a_url_that_has_none() -> None:
    settings = Settings(
        redis_url="rediss://master.example.cache.amazonaws.com:6379/0",
        redis_password=SecretStr("p@ss/word"),
    )
    assert (
        require_redis_url(settings)
        == "rediss://:p%40ss%2Fword@master.example.cache.amazonaws.com:6379/0"
    )
    assert "p@ss" not in repr(settings)  # never printed


def test_a_url_with_its_own_password_is_kept() -> None:
    settings = Settings(redis_url="redis://:own@h:6379/0", redis_password=SecretStr("other"))
    assert require_redis_url(settings) == "redis://:own@h:6379/0"


def test_a_missing_or_foreign_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        require_redis_url(Settings(redis_url=""))
    with pytest.raises(ConfigError, match="rediss://"):
        require_redis_url(Settings(redis_url="http://h:6379"))


def test_tokens_are_required_off_loopback_unless_turned_off() -> None:
    from streamscribe.options import auth_options

    with pytest.raises(ConfigError, match="STREAMSCRIBE_TOKEN_SECRET must be set"):
        auth_options(Settings(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        auth_options(Settings(host="0.0.0.0", token_secret=SecretStr("short")))
    assert auth_options(Settings(host="0.0.0.0", token_secret=SecretStr("s" * 32))) is not None
    assert auth_options(Settings(host="0.0.0.0", auth="off")) is None
    assert auth_options(Settings(host="127.0.0.1")) is None  # loopback: a laptop
    assert auth_options(Settings(host="127.0.0.1", auth="on", token_secret=SecretStr("s" * 32)))
