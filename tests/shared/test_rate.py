import pytest

from shared.rate import TokenBucket


def test_take_refuses_what_is_not_there_and_refills_with_time() -> None:
    bucket = TokenBucket(2.0, 4.0, now=0.0)
    assert bucket.take(4.0, now=0.0)
    assert not bucket.take(1.0, now=0.0)
    assert bucket.take(1.0, now=0.5)
    assert not bucket.take(1.0, now=0.5)


def test_refill_stops_at_capacity() -> None:
    bucket = TokenBucket(1.0, 3.0, now=0.0)
    assert bucket.take(3.0, now=1000.0)
    assert not bucket.take(0.5, now=1000.0)


def test_spend_goes_into_debt_and_says_so() -> None:
    bucket = TokenBucket(1.0, 1.0, now=0.0)
    assert bucket.spend(1.0, now=0.0)
    assert not bucket.spend(2.0, now=0.0)
    assert not bucket.spend(0.0, now=1.0)  # still 1 in debt after a second's refill
    assert bucket.spend(0.0, now=2.0)


def test_a_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(1.0, 2.0, now=10.0)
    assert bucket.take(2.0, now=10.0)
    assert not bucket.take(1.0, now=5.0)


def test_negative_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(-1.0, 1.0, now=0.0)


def test_seconds_until_says_when_a_debt_is_paid_back() -> None:
    bucket = TokenBucket(0.25, 0.5, now=0.0)
    assert bucket.seconds_until(0.0, now=0.0) == 0.0
    bucket.spend(1.0, now=0.0)  # 0.5 in debt
    assert bucket.seconds_until(0.0, now=0.0) == 2.0
    assert bucket.seconds_until(0.0, now=1.0) == 1.0
    assert bucket.seconds_until(0.0, now=2.0) == 0.0
    assert TokenBucket(0.0, 1.0, now=0.0).seconds_until(2.0, now=5.0) == float("inf")
