"""The capture package's public names: each one is its defining module's object."""

from __future__ import annotations

import importlib

import pytest

import harness.capture

MODULES = ["writer", "samples", "dissector", "tshark"]
#: Public names reached through their module only: constants and helpers of one use, and
#: samples() (the name is the submodule's: harness.capture.samples.samples).
LEFT_TO_MODULE = {
    "writer": {"EPOCH_US"},
    "samples": {"OTHER_PORT", "readme", "samples"},
    "dissector": {"DEFAULT_PLUGINS_DIR"},
    "tshark": {"CHECK_PREFS", "tshark_env"},
}


def test_every_public_name_resolves_to_the_object_its_module_defines() -> None:
    for name in harness.capture.__all__:
        value = getattr(harness.capture, name)
        owners = [
            module
            for module in MODULES
            if getattr(importlib.import_module(f"harness.capture.{module}"), name, None) is value
        ]
        assert owners, f"harness.capture.{name} is defined by none of its modules"
        assert name in dir(harness.capture)


def test_every_public_name_of_the_modules_is_reexported_or_left_to_its_module_on_purpose() -> None:
    for module in MODULES:
        names = set(importlib.import_module(f"harness.capture.{module}").__all__)
        missing = names - set(harness.capture.__all__) - LEFT_TO_MODULE[module]
        assert not missing, f"harness.capture.{module} exports {sorted(missing)}, harness.capture does not"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'write_pcap'"):
        _ = harness.capture.write_pcap  # type: ignore[attr-defined]
