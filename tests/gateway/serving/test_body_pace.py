"""The judgement of a request body's pace: idle time, the minimum rate after its grace, and
a clock that stops while reading is paused."""

from __future__ import annotations

from gateway.serving.body_pace import BodyPace
from tests.gateway.serving.test_limits import LIMITS


def _drip(pace: BodyPace, first: int, last: int, bytes_per_second: int = 1) -> str | None:
    """Feed ``bytes_per_second`` at each second from ``first`` to ``last``; the first verdict against it."""
    for second in range(first, last + 1):
        pace.received(bytes_per_second, float(second))
        if (verdict := pace.verdict(float(second))) is not None:
            return verdict
    return None


def test_a_one_byte_a_second_drip_is_too_slow_once_the_grace_has_passed() -> None:
    pace = BodyPace(LIMITS)
    assert _drip(pace, 1, 5) is None
    verdict = _drip(pace, 6, 6)
    assert verdict is not None
    assert "under the minimum of 240" in verdict


def test_a_body_at_the_minimum_rate_is_never_cut() -> None:
    assert _drip(BodyPace(LIMITS), 1, 60, bytes_per_second=240) is None


def test_a_body_idle_for_the_body_timeout_is_cut_even_after_a_fast_start() -> None:
    pace = BodyPace(LIMITS)
    pace.received(1_000_000, 0.5)
    assert pace.verdict(10.4) is None
    verdict = pace.verdict(10.5)
    assert verdict is not None
    assert "no byte of it for 10s" in verdict


def test_time_while_reading_is_paused_is_not_charged() -> None:
    # The app takes its time with the first chunk; reading is paused, so the client cannot send.
    pace = BodyPace(LIMITS)
    pace.received(2000, 1.0)
    pace.pause(1.0)
    assert pace.verdict(60.0) is None
    pace.resume(60.0)
    # Idle counts from the resume, and the rate over the 1 s read before and the 4 s since.
    assert pace.verdict(64.0) is None
    pace.received(1000, 64.0)
    assert pace.verdict(65.0) is None
    assert pace.next_check(65.0) == 1.0
