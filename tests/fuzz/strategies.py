"""Hostile values shared by the fuzz tests: strings and numbers a careless parser trips on."""

from __future__ import annotations

from hypothesis import strategies as st

#: Text that looks like a number, an index or a flag but is not quite one (or is an absurd one).
TRICKY = (
    "",
    " ",
    "0",
    "-1",
    "01",
    "+1",
    " 1",
    "1 ",
    "1.5",
    "1e309",
    "-1e309",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "0x10",
    "1_000",
    "²",  # str.isdigit() says yes, int() says no
    "\u0661\u0662",  # Arabic-Indic digits: both say yes
    "9" * 30,
    "9" * 5000,  # past int()'s 4300-digit limit
    "true",
    "TRUE",
    "yes",
    "null",
    "[]",
    "[1]",
    '["a"]',
    '["' + "a" * 100 + '"]',
    "{}",
    '{"a": 1}',
    "\x00",
    "é",
    "日本語",
    "a" * 253,
    "a" * 64,
    "/",
    "../../etc/passwd",
    "a/b",
    "%",
    "%00",
    "\n",
    "2026-01-01T00:00:00Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
)

tricky = st.sampled_from(TRICKY)
#: Any text hypothesis makes (no lone surrogates: they cannot cross HTTP as UTF-8).
any_text = st.text(max_size=50)
numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
huge = st.sampled_from(("x" * 100_000, "é" * 50_000, "9" * 100_000))
value = st.one_of(tricky, any_text, numbers, huge)
