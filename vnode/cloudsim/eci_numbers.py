"""The numbers inside the ECI dialect's parameter names and values: ``N`` of ``Prefix.N``, uids, ports, modes.

Parsed strictly, in ASCII digits only: ``str.isdigit`` also says yes to ``²`` and Arabic-Indic digits, and
``int`` refuses more than 4300 digits, so a check with one and a parse with the other turned a
hostile parameter into an unhandled exception (a 500) before these helpers.
"""

from __future__ import annotations

__all__ = ["MAX_INDEX", "digits", "index"]

#: The largest N of ``Prefix.N`` (ECI's own lists are far shorter; this bounds a hostile one).
MAX_INDEX = 99_999


def index(text: str) -> int | None:
    """``N`` of ``Prefix.N``: ASCII digits without a leading zero, 1..MAX_INDEX; None for anything else.

    One spelling per index, so ``Container.1.Name`` and ``Container.01.Name`` never both stand for
    container 1 (the later silently winning), and ``²`` or a 5000-digit N is refused, not a crash.
    """
    if not (text.isascii() and text.isdigit()) or text[0] == "0" or len(text) > len(str(MAX_INDEX)):
        return None
    return int(text)


def digits(text: str, *, high: int) -> int | None:
    """A non-negative integer written in ASCII digits, at most ``high``; None for anything else."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) or int(text) > high:
        return None
    return int(text)
