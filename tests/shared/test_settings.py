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
