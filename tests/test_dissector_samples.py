"""The committed captures through real tshark with the lpjson dissector.

Every message is dissected exactly once with the codec's field values, every
violation is flagged with its expert info, and no Lua error shows up, neither
on stderr (load errors) nor as ``_ws.lua.error`` (runtime errors).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from dissector_helpers import assert_clean, check_sessions, require_tshark

from harness.capture.dissector import dissector_path
from harness.capture.samples import Sample, samples
from harness.capture.tshark import CHECK_PREFS, dissect, tshark_env

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
SAMPLES = samples()


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_dissector_on_committed_capture_equals_codec(sample: Sample) -> None:
    require_tshark()
    run = dissect(PCAPS / sample.filename)
    assert_clean(run)
    problems = check_sessions(run, sample.sessions)
    assert not problems, "\n".join(problems)
    flagged = [r.violation for r in run.records if r.violation is not None]
    assert flagged == sample.violations


def test_dissector_flags_every_violation_class_of_the_codec() -> None:
    from harness.errors import ERROR_CLASSES

    shown = {code for sample in SAMPLES for code in sample.violations}
    assert shown == set(ERROR_CLASSES)


def test_dissector_second_pass_sees_the_same_messages() -> None:
    """tshark -2 re-dissects every frame, as the GUI does when a packet is clicked."""
    require_tshark()
    for name in ("07-pipelined", "13-violations", "14-bad-content", "16-out-of-order", "18-other-port"):
        one = dissect(PCAPS / f"{name}.pcapng")
        two = dissect(PCAPS / f"{name}.pcapng", two_pass=True)
        assert_clean(two)
        # a request learns its response's frame only in a second pass (as in HTTP): every
        # other field is the same in both
        assert [(r.frame, r.kind, r.violation, _without_lookahead(r.fields)) for r in two.records] == [
            (r.frame, r.kind, r.violation, r.fields) for r in one.records
        ], name


def _without_lookahead(fields: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if k != "lpjson.response_in"}


def test_dissector_info_column_is_readable(tmp_path: Path) -> None:
    exe = require_tshark()
    capture = PCAPS / "08-three-in-one-segment.pcapng"
    args = [exe, "-r", str(capture), "-X", f"lua_script:{dissector_path()}", "-Y", "lpjson"]
    out = subprocess.run(
        [*args, "-T", "fields", "-e", "_ws.col.Info"],
        capture_output=True,
        timeout=60,
        env=tshark_env(str(tmp_path)),
        check=True,
    ).stdout.decode()
    lines = out.splitlines()
    assert lines[0] == "Request: search 'morpheus', search 'ring', search '🐶'"
    assert lines[1].startswith("Response: result 'Follow the white rabbit. 🐰', result 'In the caves")


def test_dissector_without_tcp_reassembly_marks_cut_messages_and_invents_no_violation() -> None:
    require_tshark()
    for name in ("09-split-prefix", "10-split-header", "12-large-100k"):
        run = dissect(PCAPS / f"{name}.pcapng", prefs={"tcp.desegment_tcp_streams": "FALSE"})
        assert_clean(run)
        assert any(r.kind == "truncated" and "lpjson.truncated" in r.experts for r in run.records), name
        assert not [r.violation for r in run.records if r.violation], name


def test_checksum_check_catches_a_corrupted_frame(tmp_path: Path) -> None:
    """The runs above verify checksums: a flipped payload bit is reported, so their silence counts."""
    require_tshark()
    data = bytearray((PCAPS / "01-search-morpheus.pcapng").read_bytes())
    data[data.find(b'"value": "morpheus"') + 3] ^= 1
    (tmp_path / "bad.pcapng").write_bytes(bytes(data))
    assert dissect(tmp_path / "bad.pcapng").bad_checksums == [4]


def test_dissector_default_prefs_treat_an_out_of_order_gap_as_lost_data() -> None:
    """Reassembling out-of-order segments is off by default: no false incomplete-message."""
    require_tshark()
    run = dissect(PCAPS / "16-out-of-order.pcapng", prefs={})
    assert_clean(run)
    assert not [r.violation for r in run.records if r.violation]
    gaps = [r for r in run.records if r.kind == "gap"]
    assert gaps and all("lpjson.gap_in_stream" in r.experts for r in gaps)


def test_dissector_fields_and_links_of_a_search_and_an_error() -> None:
    require_tshark()
    run = dissect(PCAPS / "01-search-morpheus.pcapng", two_pass=True)
    request, response = [r for r in run.records if r.kind == "message"]
    assert (request.text("action"), request.text("value"), request.text("request")) == (
        "search",
        "morpheus",
        "1",
    )
    assert response.text("result") == "Follow the white rabbit. 🐰" and response.text("response") == "1"
    assert request.number("response_in") == response.frame and response.number("request_in") == request.frame
    assert response.text("time") is not None
    errors = [r for r in dissect(PCAPS / "14-bad-content.pcapng").records if r.text("error")]
    assert errors and errors[0].text("request_in") is not None


def _tshark_lines(exe: str, home: Path, capture: Path, *args: str) -> list[str]:
    out = subprocess.run(
        [exe, "-n", "-r", str(capture), "-X", f"lua_script:{dissector_path()}", *args],
        capture_output=True,
        timeout=60,
        env=tshark_env(str(home)),
        check=True,
    ).stdout.decode()
    return out.splitlines()


def _without_eos_note(line: str) -> str:
    return re.sub(r" \[LPJSON incomplete-message: \d+ of \d+ bytes\]$", "", line)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_packet_list_without_a_tree_shows_the_same_info_column(sample: Sample, tmp_path: Path) -> None:
    """tshark's summary lines (the GUI's packet list) build no tree and reference no lpjson field:
    the dissector then skips the items nobody sees, and the Info column must not change."""
    exe = require_tshark()
    capture = PCAPS / sample.filename
    summary = _tshark_lines(exe, tmp_path, capture, "-o", 'gui.column.format:"Info","%i"')
    full = _tshark_lines(exe, tmp_path, capture, "-T", "fields", "-e", "_ws.col.Info")
    # What the end-of-stream check (a postdissector) appends to a FIN's Info column is in
    # tshark 4.4's summary lines but not in its _ws.col.Info field (both in 4.0): compared
    # without it.
    assert [_without_eos_note(line) for line in summary] == [_without_eos_note(line) for line in full]
    assert any("Request" in line for line in summary), "the sample was not dissected as lpjson"


def test_filters_match_without_a_tree(tmp_path: Path) -> None:
    """-Y on an lpjson field, or on a field of Wireshark's JSON subtree alone, finds the message
    although no tree is shown (lpjson referenced, or only json)."""
    exe = require_tshark()
    capture = PCAPS / "08-three-in-one-segment.pcapng"
    number = ["-o", 'gui.column.format:"No","%m"']
    by_lpjson = _tshark_lines(exe, tmp_path, capture, "-Y", 'lpjson.value == "ring"', *number)
    by_json = _tshark_lines(exe, tmp_path, capture, "-Y", 'json.value.string == "ring"', *number)
    shown = _tshark_lines(
        exe, tmp_path, capture, "-Y", 'lpjson.value == "ring"', "-T", "fields", "-e", "frame.number"
    )
    assert shown == ["4"]
    assert [line.strip() for line in by_lpjson] == [line.strip() for line in by_json] == shown


def test_expert_statistics_without_a_tree_list_every_violation(tmp_path: Path) -> None:
    """`tshark -q -z expert` (the GUI's Expert Information) dissects without showing a tree:
    every violation of the sample is still reported."""
    exe = require_tshark()
    sample = next(s for s in SAMPLES if s.filename.startswith("13-"))
    lines = _tshark_lines(exe, tmp_path, PCAPS / sample.filename, "-q", "-z", "expert")
    summaries = [line.split(" LPJSON ", 1)[1].strip() for line in lines if " LPJSON " in line]
    # a violation's entry reads "<code>: <reason>"; the other LPJSON entries are notes
    reported = [m.group(1) for text in summaries if (m := re.match(r"([a-z]+(?:-[a-z0-9]+)+): ", text))]
    assert sorted(reported) == sorted(sample.violations)


#: lpjson's fields a display filter or a custom column may name (lpjson.content is left out:
#: a column shows bytes cut short).
COLUMN_FIELDS = [
    "header_length", "header", "byteorder", "content_type", "content_encoding", "content_length",
    "extension", "text", "action", "value", "result", "error", "request", "response", "request_in",
    "time", "violation", "missing",
]  # fmt: skip


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_referenced_fields_without_a_tree_equal_the_full_dissection(sample: Sample, tmp_path: Path) -> None:
    """Custom columns reference fields without showing a tree (as a display filter does): the
    dissector then adds only the referenced items, and each must hold what the full tree holds."""
    exe = require_tshark()
    capture = PCAPS / sample.filename
    columns = ",".join(f'"{name}","%Cus:lpjson.{name}"' for name in COLUMN_FIELDS)
    referenced = _tshark_lines(exe, tmp_path, capture, "-T", "tabs", "-o", f"gui.column.format:{columns}")
    fields = [arg for name in COLUMN_FIELDS for arg in ("-e", f"lpjson.{name}")]
    full = _tshark_lines(exe, tmp_path, capture, "-T", "fields", "-E", "separator=/t", *fields)
    # a boolean shows as True or 1, in a column or a field, depending on Wireshark's version
    assert [line.replace("True", "1") for line in referenced] == [line.replace("True", "1") for line in full]
    assert any(line.strip() for line in full), "nothing dissected as lpjson"


@pytest.mark.parametrize("name", ["07-pipelined", "11-split-content", "14-bad-content"])
def test_json_subtree_preference_off_shows_each_content_as_its_text(name: str) -> None:
    """With ``lpjson.json_subtree`` off, a valid text/json content is one text line
    (``lpjson.text``) instead of Wireshark's JSON subtree; every other field and verdict is
    the same as with the preference on (the default)."""
    require_tshark()
    capture = PCAPS / f"{name}.pcapng"
    on = dissect(capture)
    off = dissect(capture, prefs={**CHECK_PREFS, "lpjson.json_subtree": "FALSE"})
    assert_clean(off)
    assert [(r.frame, r.kind, r.violation) for r in off.records] == [
        (r.frame, r.kind, r.violation) for r in on.records
    ]
    texts = 0
    for with_subtree, without in zip(on.records, off.records, strict=True):
        assert {k: v for k, v in without.fields.items() if k != "lpjson.text"} == {
            k: v for k, v in with_subtree.fields.items() if k != "lpjson.text"
        }
        if (
            with_subtree.kind == "message"
            and with_subtree.violation is None
            and with_subtree.text("content_type") == "text/json"
        ):
            # the decoded text: the content's own bytes when it is UTF-8
            text = with_subtree.text("text") or (with_subtree.content or b"").decode("utf-8")
            assert without.text("text") == text
            texts += 1
    assert texts, "no valid text/json content in the sample"


def test_json_subtree_preference_off_gives_no_json_fields(tmp_path: Path) -> None:
    exe = require_tshark()
    capture = PCAPS / "01-search-morpheus.pcapng"
    fields = ["-Y", "lpjson", "-T", "fields", "-e", "json.key", "-e", "lpjson.text", "-e", "lpjson.action"]
    on = _tshark_lines(exe, tmp_path, capture, *fields)
    off = _tshark_lines(exe, tmp_path, capture, "-o", "lpjson.json_subtree:FALSE", *fields)
    assert on == ["action,value\t\tsearch", "result\t\t"]
    assert off == [
        '\t{"action": "search", "value": "morpheus"}\tsearch',
        '\t{"result": "Follow the white rabbit. 🐰"}\t',
    ]
