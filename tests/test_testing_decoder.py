"""harness.testing.check_decoder against decoders written to be wrong, and correct ones.

Each naive decoder of tests/decoders/ makes one mistake a reader of the guide makes; the check
that catches it (and the rule it names) is in ``decoders.NAIVE``. Runs with a fixed, small
Hypothesis budget (``settings=``), derandomized: the same examples on every run.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from decoders import CORRECT, NAIVE
from hypothesis import settings

from harness import Message
from harness.testing import DecoderCheckFailure, check_decoder, compare_decoder

BUDGET = settings(max_examples=25, derandomize=True, database=None)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # failing inputs are written to ./.harness/


def _factory(name: str) -> object:
    return importlib.import_module(f"decoders.{name}").factory


@pytest.mark.parametrize("name", CORRECT)
def test_correct_decoders_pass_every_check(name: str) -> None:
    check_decoder(_factory(name), settings=BUDGET)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_each_naive_decoder_is_caught_by_the_check_meant_for_it(name: str) -> None:
    check, rule = NAIVE[name]
    with pytest.raises(DecoderCheckFailure) as caught:
        check_decoder(_factory(name), settings=BUDGET)  # type: ignore[arg-type]
    found = {(f.check, f.rule) for f in caught.value.failures}
    assert check in {c for c, _ in found}, found
    if check != "split":  # a framing bug shows as F2 or F3, whichever example shrinks first
        assert (check, rule) in found, found


def test_failure_prints_bytes_cuts_results_and_the_capture_command(tmp_path: Path) -> None:
    with pytest.raises(DecoderCheckFailure) as caught:
        check_decoder(_factory("never_incomplete"), settings=BUDGET)  # type: ignore[arg-type]
    (failure,) = caught.value.failures
    text = str(caught.value)
    assert failure.check == "violation:incomplete-message" and failure.code == "incomplete-message"
    assert repr(failure.data) in text or repr(failure.data[:600])[:-1] in text
    assert "cut at:" in text and "expected:" in text and "actual:" in text
    assert "F4 (docs/PROTOCOL.md#f4)" in text
    assert failure.path is not None and (tmp_path / failure.path).read_bytes() == failure.data
    assert f"harness pcap from-bytes {failure.path}" in text and "--out" in failure.command


def test_the_capture_command_runs(tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    with pytest.raises(DecoderCheckFailure) as caught:
        check_decoder(_factory("duplicate_keys"), settings=BUDGET)  # type: ignore[arg-type]
    failure = caught.value.failures[0]
    args = failure.command.split()[1:]
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(args[args.index("--out") + 1]).exists()


def test_error_codes_are_compared_when_mapped() -> None:
    """A decoder that raises the wrong code for a violation fails when it maps its codes."""
    from decoders.strict import Decoder, LpjsonError

    class WrongCode(Decoder):
        def read_header(self, raw: bytes):  # type: ignore[no-untyped-def]
            try:
                return super().read_header(raw)
            except LpjsonError as error:
                if error.code == "duplicate-key":
                    raise LpjsonError("header-not-json") from None
                raise

    with pytest.raises(DecoderCheckFailure) as caught:
        check_decoder(WrongCode, settings=BUDGET)
    assert [f.check for f in caught.value.failures] == ["violation:duplicate-key"]
    assert "mapped to 'header-not-json'" in caught.value.failures[0].problem
    # Without the mapping, any error is a detection.
    check_decoder(lambda: WrongCode(), settings=BUDGET)  # type: ignore[arg-type,return-value]


def test_a_decoder_with_a_smaller_limit_is_checked_at_that_limit() -> None:
    from decoders.strict import Decoder

    class Small(Decoder):
        max_content_length = 100

    check_decoder(Small, max_content_length=100, settings=BUDGET)
    # told 1 MiB, a valid 101-byte content is refused
    message = Message.from_bytes(b"x" * 101).encode()
    failure = compare_decoder(Small, message)
    assert failure is not None and "refused a valid stream" in failure.problem


def test_compare_decoder_reports_a_dropped_pipelined_message() -> None:
    from harness.vectors import GUIDE_EXCHANGES

    request = GUIDE_EXCHANGES["morpheus"][0]
    assert compare_decoder(_factory("strict"), request * 2) is None  # type: ignore[arg-type]
    failure = compare_decoder(_factory("drops_second"), request * 2)  # type: ignore[arg-type]
    assert failure is not None and failure.rule == "F3" and "returned 1 message(s) where 2" in failure.problem


def test_feed_returning_none_is_a_clear_failure() -> None:
    class ReturnsNone:
        def feed(self, data: bytes) -> None:
            return None

        def close(self) -> None:
            pass

    failure = compare_decoder(ReturnsNone, b"\x00\x00")  # type: ignore[arg-type]
    assert failure is not None and "a list, empty when none" in failure.problem
