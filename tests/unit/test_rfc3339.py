"""status.rfc3339 formats by hand (for speed): it must say what strftime says, in UTC, to the second."""

from __future__ import annotations

import datetime

import pytest

from vnode.node import status

PLUS_8 = datetime.timezone(datetime.timedelta(hours=8))


@pytest.mark.parametrize(
    "when",
    [
        datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
        datetime.datetime(2027, 1, 1, 7, 0, 0, tzinfo=PLUS_8),  # the day before, in UTC
        datetime.datetime(999, 3, 4, 5, 6, 7, tzinfo=datetime.UTC),  # a year of three digits is padded
    ],
)
def test_rfc3339_is_strftimes_utc_second(when: datetime.datetime) -> None:
    assert status.rfc3339(when) == when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ").rjust(20, "0")
    assert status.rfc3339(None) is None
