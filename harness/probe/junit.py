"""The probe's report as JUnit XML, for CI tools that read pytest's ``--junitxml``.

One ``<testsuite>`` inside ``<testsuites>``; one ``<testcase>`` per check, its
``classname`` the protocol and group (``lpjson.splitting``), its ``name`` the check's.
A failing check has a ``<failure>`` whose ``message`` is the detail, the hint and
the rule it breaks on one line, ``type`` its severity (``spec``/``unsafe``), and
whose text adds the rule's wording and the command that reruns it; a skipped
check has ``<skipped>``. What an observer attached to a result (a supervised
server's output) goes to ``<system-out>``. The layout is the one pytest writes
(the "xunit2" family), which Jenkins, GitLab and GitHub test reporters read.
"""

from __future__ import annotations

import datetime
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.probe.report import breaks, rerun_of
from harness.probe.runner import CheckResult, ProbeResult
from harness.spec import cite

__all__ = ["failure_message", "to_junit_xml", "write_junit_xml"]

#: Characters XML 1.0 cannot carry, even escaped (a detail may quote a server's raw bytes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def failure_message(result: CheckResult) -> str:
    """One line: what went wrong, what to fix, which rule it breaks."""
    parts = [result.detail]
    if result.hint:
        parts.append(f"hint: {result.hint}")
    if result.rule is not None:
        parts.append(f"breaks {cite(result.rule)}")
    return " | ".join(parts)


def to_junit_xml(probe: ProbeResult, *, timestamp: datetime.datetime | None = None) -> ET.ElementTree:
    """The JUnit XML document of ``probe``."""
    when = timestamp or datetime.datetime.now(datetime.UTC)
    counts = {
        "tests": str(len(probe.results)),
        "failures": str(probe.failed),
        "errors": "0",
        "skipped": str(probe.skipped),
        "time": f"{probe.seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": "harness probe", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": f"harness probe {probe.target}",
            **counts,
            "timestamp": when.replace(microsecond=0).isoformat(),
            "hostname": socket.gethostname(),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", str(probe.target)),
        ("embedded", str(probe.target.embedded).lower()),
        ("protocol", probe.protocol),
        ("profile", probe.profile),
        ("app", probe.app),
        ("seed", str(probe.seed)),
        ("timeout_scale", f"{probe.scale:g}"),
        ("root_causes", ",".join(r.name for r in probe.root_causes)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for result in probe.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"{probe.protocol}.{result.group or 'checks'}",
                "name": result.name,
                "time": f"{result.seconds:.3f}",
            },
        )
        if result.status == "fail":
            text = [result.detail]
            if result.hint:
                text.append(f"hint: {result.hint}")
            if result.rule is not None:
                text.append(breaks(result.rule))
            if result.cause is not None:
                text.append(f"root cause: {result.cause} (this check fails because it fails)")
            text.append(f"rerun: {rerun_of(probe, result.name)}")
            failure = ET.SubElement(
                case, "failure", {"message": _xml(failure_message(result)), "type": result.severity or "fail"}
            )
            failure.text = _xml("\n".join(text))
        elif result.status == "skip":
            ET.SubElement(case, "skipped", {"message": _xml(result.detail)})
        if result.attachments:
            out = ET.SubElement(case, "system-out")
            out.text = _xml("\n".join(f"--- {name} ---\n{text}" for name, text in result.attachments.items()))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit_xml(probe: ProbeResult, path: Path) -> None:
    """Write :func:`to_junit_xml` to ``path`` (UTF-8, with an XML declaration)."""
    to_junit_xml(probe).write(path, encoding="utf-8", xml_declaration=True)
