"""How often a rater's request pays for the presence bump and the departure check."""

from __future__ import annotations

from datetime import timedelta

from judging.studies.departures import presence_due

DAY = timedelta(hours=24)


def test_the_first_request_always_checks() -> None:
    assert presence_due(None, 5.0, DAY)


def test_with_a_day_long_idle_window_a_minute_later_is_not_due() -> None:
    # Checking every 30 s made one request in six under 100 raters pay three statements.
    assert not presence_due(1000.0, 1060.0, DAY)
    assert not presence_due(1000.0, 1299.0, DAY)
    assert presence_due(1000.0, 1300.0, DAY)


def test_a_short_idle_window_is_checked_at_a_twentieth_of_it() -> None:
    # With a one-minute window a departure must be noticed within seconds, not 30 s later.
    minute = timedelta(seconds=60)
    assert not presence_due(1000.0, 1002.9, minute)
    assert presence_due(1000.0, 1003.0, minute)
