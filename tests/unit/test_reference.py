"""The configuration reference in docs/ is generated from the code and must be current."""

from vnode import reference


def test_configuration_reference_is_current() -> None:
    assert reference.DOC.read_text() == reference.render(), "docs/configuration.md is stale: run `make docs`"
