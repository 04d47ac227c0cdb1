"""The signature's percent-encoding is exactly ``urllib.parse.quote(value, safe="~")``."""

from __future__ import annotations

import random
import urllib.parse

import pytest

from vnode import percent


@pytest.mark.parametrize(
    "value",
    ["", "Container.1.Name", "nginx:alpine", "a b+c/d=e%f", "~-_.", "LS0tLS1CRUdJTi+/==", "é€😀", "100%\n\t\x00"],
)
def test_known_values_quote_as_urllib_does(value: str) -> None:
    assert percent.quote(value) == urllib.parse.quote(value, safe="~")


def test_random_values_quote_as_urllib_does() -> None:
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(128)] + ["é", "€", "😀", "\u00a0"]
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert percent.quote(value) == urllib.parse.quote(value, safe="~"), repr(value)
