"""The table of violations (harness.violations) against the error classes and the codec.

One row per error code of harness.errors.ERROR_CLASSES; each row's canonical example
and everything its generator draws raise exactly the row's class: through the
Decoder for framing and header errors, through Message.json() for content errors.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import ERROR_CLASSES, ContentError, Decoder, IncompleteMessage, Message, ProtocolError
from harness.spec import RULES
from harness.violations import (
    VIOLATIONS,
    Example,
    Violation,
    content_violations,
    first_error,
    stream_violations,
)


def test_violations_table_has_one_row_per_error_class_in_the_same_order() -> None:
    assert list(VIOLATIONS) == list(ERROR_CLASSES)
    for code, row in VIOLATIONS.items():
        assert row.code == code and row.error is ERROR_CLASSES[code]
        assert row.rule in RULES
        assert row.summary and "\n" not in row.summary
        assert row.example.description and "\n" not in row.example.description
    assert [r.code for r in stream_violations()] + [r.code for r in content_violations()] == list(VIOLATIONS)


def test_violations_rules_are_the_ones_each_code_breaks() -> None:
    rules = {code: row.rule for code, row in VIOLATIONS.items()}
    assert rules == {
        "zero-header-length": "F1",
        "header-not-utf8": "H1",
        "header-not-json": "H2",
        "non-finite-number": "H3",
        "duplicate-key": "H4",
        "header-not-object": "H5",
        "missing-header-key": "H6",
        "invalid-header-value": "H7",
        "content-too-large": "L1",
        "incomplete-message": "F4",
        "unsupported-encoding": "C2",
        "content-not-decodable": "C3",
        "content-not-json": "C4",
    }
    assert VIOLATIONS["duplicate-key"].cite == "H4 (docs/PROTOCOL.md#h4)"


def test_violations_row_must_match_its_class_and_name_a_known_rule() -> None:
    row = VIOLATIONS["duplicate-key"]
    with pytest.raises(ValueError, match="holds the class of 'header-not-json'"):
        Violation("duplicate-key", VIOLATIONS["header-not-json"].error, "H4", "", row.example, row.generate)
    with pytest.raises(ValueError, match="rule 'H99'"):
        Violation("duplicate-key", row.error, "H99", "", row.example, row.generate)


def assert_raises_exactly(row: Violation, example: Example, max_content_length: int | None = None) -> None:
    """``example`` raises exactly ``row.error``: from the Decoder, or from Message.json()."""
    decoder = Decoder() if max_content_length is None else Decoder(max_content_length=max_content_length)
    if row.is_content:
        messages = decoder.feed(example.data)
        decoder.close()
        assert len(messages) == 1, f"{row.code}: {example.data!r} holds {len(messages)} messages"
        (message,) = messages
        assert message == example.message and message.is_json
        with pytest.raises(ContentError) as caught:
            message.json()
    else:
        with pytest.raises(ProtocolError) as caught:
            messages = decoder.feed(example.data)
            assert row.at_end_of_stream, f"{row.code}: {example.data!r} raises only at the end of the stream"
            assert messages == []
            decoder.close()
        assert caught.value.offset == 0
    assert type(caught.value) is row.error, f"{row.code}: {example.data!r} raises {caught.value!r}"
    if isinstance(caught.value, IncompleteMessage):
        assert (caught.value.expected, caught.value.received) == (example.expected, example.received)


@pytest.mark.parametrize("code", list(VIOLATIONS))
def test_violations_canonical_example_raises_exactly_its_class(code: str) -> None:
    row = VIOLATIONS[code]
    assert_raises_exactly(row, row.example)
    error = first_error(row.example.data)
    assert error is not None and type(error) is row.error


@pytest.mark.parametrize("code", list(VIOLATIONS))
@settings(max_examples=40)
@given(data=st.data())
def test_violations_generator_draws_examples_that_raise_exactly_its_class(
    code: str, data: st.DataObject
) -> None:
    row = VIOLATIONS[code]
    example = row.generate(data.draw)
    assert example.description
    assert_raises_exactly(row, example)


@settings(max_examples=40)
@given(data=st.data(), limit=st.integers(0, 5000))
def test_violations_content_too_large_generator_follows_the_limit(data: st.DataObject, limit: int) -> None:
    row = VIOLATIONS["content-too-large"]
    example = row.generate(data.draw, max_content_length=limit)
    assert example.extra["content_length"] > limit
    assert_raises_exactly(row, example, max_content_length=limit)


def test_violations_content_examples_are_whole_messages() -> None:
    for row in content_violations():
        assert row.example.message is not None
        assert row.example.data == row.example.message.encode()
        assert isinstance(row.example.message, Message) and row.example.message.is_json
        assert not row.closes_connection and not row.at_end_of_stream
    assert [row.code for row in stream_violations() if row.at_end_of_stream] == ["incomplete-message"]


_NO_HYPOTHESIS = """
import sys
{body}
loaded = sorted(m for m in sys.modules if m == "hypothesis" or m.startswith("hypothesis."))
assert not loaded, loaded
"""


@pytest.mark.parametrize(
    "body",
    [
        "import harness.violations",
        "import harness.probe",
        "import harness.capture.samples",
        "from harness.cli import main\nassert main(['probe', '--list']) == 0",
    ],
    ids=["violations", "probe", "samples", "probe-list"],
)
def test_violations_table_probe_and_samples_import_no_hypothesis(body: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_HYPOTHESIS.format(body=body)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
