"""The generated parts of docs/ (the configuration reference, the module map) must be current."""

from vnode import reference


def test_configuration_reference_is_current() -> None:
    assert reference.DOC.read_text() == reference.render(), "docs/configuration.md is stale: run `make docs`"


def test_module_map_is_current() -> None:
    text = reference.ARCHITECTURE.read_text()
    assert text == reference.render_architecture(text), "docs/architecture.md's module map is stale: run `make docs`"


def test_pod_spec_reference_is_current() -> None:
    assert reference.POD_SPEC.read_text() == reference.render_pod_spec(), "docs/pod-spec.md is stale: run `make docs`"
