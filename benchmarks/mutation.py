"""Mutation testing of the codec: how many small bugs do the codec's tests catch?

mutmut (3.x, the ``mutation`` extra: ``pip install -e '.[mutation]'``) makes every small
change it knows (``<`` to ``<=``, ``and`` to ``or``, a constant changed, a call's argument
dropped...) to the modules given, and runs the tests that call the mutated function
against each one. A mutant the tests fail on is *killed*; one they pass is a *survivor*:
either a test is missing, or the mutant is *equivalent* (it behaves exactly like the
original, so no test can kill it). Equivalent mutants are listed in :data:`EQUIVALENT`
below, each with the reason, and the score is given both ways.

Everything happens in a copy of the repository under ``.mutation/`` (git-ignored):
harness/, tests/, the test data, and mutmut's own files. The repository itself is never
written, except the results file when ``--results`` is given.

Not run in CI: a full run over the default modules takes a while (each mutant re-runs
the tests of its function, Hypothesis included, with a fixed ``mutation`` profile:
derandomized, ``--examples`` examples, no example database, so that a verdict does not
depend on the run).

    python benchmarks/mutation.py --module harness/strictjson.py        # one module
    python benchmarks/mutation.py --module harness/message.py --max-mutants 60
    python benchmarks/mutation.py --results benchmarks/mutation-results.md   # all modules
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The codec's modules (harness/frames.py and harness/apps/ arrive with the refactor of
#: issue 10; a module missing from the tree is skipped with a note).
DEFAULT_MODULES = (
    "harness/decoder.py",
    "harness/message.py",
    "harness/strictjson.py",
    "harness/connection.py",
    "harness/frames.py",
)
#: The tests that guard those modules: the codec's unit and property tests, the
#: connection, the framing properties and the reference decoder, the fuzz invariants and
#: regressions, and the application (it reads and builds messages). No socket tests:
#: they guard the same code through the server, slowly. A missing file is skipped.
DEFAULT_TESTS = (
    "tests/test_codec_*.py",
    "tests/test_connection.py",
    "tests/test_framing_*.py",
    "tests/test_fuzz_invariants.py",
    "tests/test_fuzz_regressions.py",
    "tests/test_app.py",
    "tests/test_strategies.py",
    "tests/test_mutation_*.py",
)
#: Copied next to harness/ and tests/ when present: what the tests read from the tree.
SUPPORT = ("fuzz", "pcaps", "docs", "README.md", "pyproject.toml")
WORK = ROOT / ".mutation" / "run"
PROFILE_PLUGIN = "mutation_profile"


@dataclass(frozen=True)
class Equivalent:
    """A surviving mutant that behaves exactly like the original code.

    Matched by content, not by mutmut's numbering (which shifts whenever a function
    changes): the module, the function, and the lines the mutant removes and adds (stripped). When the
    code changes so that the mark no longer matches, the mutant shows as a survivor again
    and must be looked at again.
    """

    module: str
    function: str  # as in the mutant's name: "loads_strict", "Message.json"
    removed: tuple[str, ...]
    added: tuple[str, ...]
    why: str


def _same(module: str, function: str, removed: str, added: str, why: str) -> Equivalent:
    """An equivalent mutant that changes one line."""
    return Equivalent(module, function, (removed,), (added,), why)


_SJ = "harness/strictjson.py"
_MSG = "harness/message.py"
_CASE = "codec names are case-insensitive"
_SPEED = (
    "speed only: the msgspec shortcut is skipped more often, and the strict reader it "
    "defers to gives the same value or error (a test could only see it by timing or by "
    "patching the strict reader out)"
)

#: Survivors examined and found equivalent. Keep each ``why`` to one or two sentences.
EQUIVALENT: tuple[Equivalent, ...] = (
    _same(
        _SJ,
        "_depth",
        'outside = _STRING.sub("", text).encode("utf-8", "surrogatepass")',
        'outside = _STRING.sub("", text).encode("UTF-8", "surrogatepass")',
        _CASE,
    ),
    _same(
        _SJ,
        "_depth",
        'outside = _STRING.sub("", text).encode("utf-8", "surrogatepass")',
        'outside = _STRING.sub("XXXX", text).encode("utf-8", "surrogatepass")',
        "strings are replaced by text that holds no bracket either way",
    ),
    _same(
        _SJ,
        "_depth",
        "return 0",
        "return 1",
        "_depth is only compared with MAX_DEPTH (200): 0 and 1 give the same verdict",
    ),
    _same(
        _SJ,
        "_depth",
        "return max(0, max(depths))",
        "return max(1, max(depths))",
        "_depth is only compared with MAX_DEPTH (200): 0 and 1 give the same verdict",
    ),
    _same(
        _SJ,
        "_check_depth",
        'if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:',
        'if text.count("[") + text.count("{") >= MAX_DEPTH and _depth(text) > MAX_DEPTH:',
        "the bracket count is a pre-filter: a text of exactly MAX_DEPTH brackets is at most "
        "MAX_DEPTH deep, so computing its depth gives the same verdict (only slower)",
    ),
    _same(_SJ, "loads_strict", 'text = raw.decode("utf-8")', 'text = raw.decode("UTF-8")', _CASE),
    _same(
        _SJ,
        "loads_strict",
        'json.dumps(value, ensure_ascii=False).encode("utf-8")',
        'json.dumps(value, ensure_ascii=False).encode("UTF-8")',
        _CASE,
    ),
    _same(
        _SJ,
        "loads_strict",
        'json.dumps(value, ensure_ascii=False).encode("utf-8")',
        'json.dumps(value, ensure_ascii=None).encode("utf-8")',
        "json.dumps tests ensure_ascii for truth: None is False",
    ),
    _same(
        _SJ,
        "loads_strict",
        "if len(obj) != len(pairs) and not duplicates:",
        "if len(obj) != len(pairs) or not duplicates:",
        "only more work: an object without a repeated key adds nothing, and a later "
        "duplicate never replaces the first one reported (duplicates[0])",
    ),
    _same(
        _SJ,
        "loads_strict",
        "break",
        "return",
        "on_pairs then gives None for that object, but a duplicate always raises before "
        "the value is returned",
    ),
    _same(
        _MSG,
        "_fast_json",
        'if raw.count(b":") == len(value) and all(type(item) in _SCALARS for item in value.values()):',
        'if raw.count(b"XX:XX") == len(value) and all(type(item) in _SCALARS for item in value.values()):',
        _SPEED,
    ),
    _same(
        _MSG,
        "_fast_json",
        "return value if all(type(item) in _SCALARS for item in value) else _UNDECIDED",
        "return value if (all(type(item) in _SCALARS for item in value)) and False else _UNDECIDED",
        _SPEED,
    ),
    *(
        _same(_MSG, "Message.json", 'if self.content_encoding.lower() == "utf-8":', mutant, _SPEED)
        for mutant in (
            'if self.content_encoding.upper() == "utf-8":',
            'if self.content_encoding.lower() == "XXutf-8XX":',
            'if self.content_encoding.lower() == "UTF-8":',
        )
    ),
    _same(
        _MSG,
        "Message.json",
        "return loads_strict(self.content, text)",
        "return loads_strict(None, text)",
        "loads_strict reads raw only when it is not given the text",
    ),
    _same(
        _MSG,
        "Message.encode",
        "text = json.dumps(ordered, ensure_ascii=False, allow_nan=False)",
        "text = json.dumps(ordered, ensure_ascii=None, allow_nan=False)",
        "json.dumps tests ensure_ascii for truth: None is False",
    ),
    _same(
        _MSG,
        "Message.encode",
        "text = json.dumps(ordered, ensure_ascii=False, allow_nan=False)",
        "text = json.dumps(ordered, ensure_ascii=False, allow_nan=None)",
        "json.dumps tests allow_nan for truth: None is False",
    ),
    _same(_MSG, "Message.encode", 'raw = text.encode("utf-8")', 'raw = text.encode("UTF-8")', _CASE),
    _same(
        _MSG,
        "Message.encode",
        'return len(raw).to_bytes(2, "big") + raw + self.content',
        "return len(raw).to_bytes(2, ) + raw + self.content",
        "int.to_bytes defaults to big-endian since Python 3.11 (the oldest harness supports)",
    ),
    _same(
        _MSG,
        "Message.from_json",
        "content = json.dumps(value, ensure_ascii=False, allow_nan=False).encode(encoding)",
        "content = json.dumps(value, ensure_ascii=None, allow_nan=False).encode(encoding)",
        "json.dumps tests ensure_ascii for truth: None is False",
    ),
    _same(
        _MSG,
        "Message.from_json",
        "content = json.dumps(value, ensure_ascii=False, allow_nan=False).encode(encoding)",
        "content = json.dumps(value, ensure_ascii=False, allow_nan=None).encode(encoding)",
        "json.dumps tests allow_nan for truth: None is False",
    ),
    _same(
        "harness/frames.py",
        "FrameReader.__init__",
        "self._header: dict[str, Any] = {}",
        "self._header: dict[str, Any] = None",
        "read only in the CONTENT state, which sets it first",
    ),
    _same(
        "harness/frames.py",
        "FrameReader._parse",
        "while True:",
        "while False:",
        "speed only: without the hot loop the state machine below reads the same frames",
    ),
    _same(
        "harness/decoder.py",
        "_wrap_error",
        "if error.frames and not error.messages:",
        "if error.frames or not error.messages:",
        "the reader raises an error once with its frames and no messages, and its copies with "
        "neither: both conditions convert the same frames",
    ),
)


# -- the run ---------------------------------------------------------------------------


@dataclass
class Mutant:
    name: str
    module: str
    status: str
    diff: str = ""
    line: int | None = None
    equivalent: Equivalent | None = None


@dataclass
class ModuleResult:
    module: str
    mutants: list[Mutant] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(m.status in statuses for m in self.mutants)

    @property
    def killed(self) -> int:
        return self.count("killed", "timeout")

    @property
    def checked(self) -> int:
        return len(self.mutants) - self.count("not checked", "skipped")

    @property
    def equivalent(self) -> int:
        return sum(m.equivalent is not None for m in self.mutants)

    @property
    def survivors(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status not in {"killed", "timeout", "not checked", "skipped"}]


def _status(exit_code: int | None) -> str:
    """mutmut's verdict for a worker's exit code (the table of ``mutmut.stats``)."""
    if exit_code is None:
        return "not checked"
    return {
        0: "survived",
        1: "killed",
        3: "killed",  # an internal error in pytest is a kill
        5: "no tests",
        33: "no tests",
        34: "skipped",
        36: "timeout",
        24: "timeout",
        -24: "timeout",
        152: "timeout",
        255: "timeout",
        37: "caught by type check",
    }.get(exit_code, "suspicious")


def prepare(work: Path, modules: Sequence[str], tests: Sequence[str], examples: int) -> None:
    """A fresh copy of the tree in ``work`` and mutmut's configuration for it."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc", "work", "artifacts")
    for name in ("harness", "tests", *SUPPORT):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, work / name)
    # A Hypothesis profile of our own, registered before the test suite's conftest loads
    # HYPOTHESIS_PROFILE (pytest loads ``-p`` plugins first).
    (work / f"{PROFILE_PLUGIN}.py").write_text(
        "from hypothesis import HealthCheck, settings\n\n"
        "settings.register_profile(\n"
        f'    "mutation", max_examples={examples}, derandomize=True, database=None, deadline=None,\n'
        "    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],\n"
        ")\n"
        'settings.load_profile("mutation")\n'
    )
    also_copy = [PROFILE_PLUGIN + ".py", *(n for n in SUPPORT if (work / n).exists())]
    lines = [
        "[mutmut]",
        "source_paths=harness",
        "only_mutate=" + "\n    ".join(modules),
        "also_copy=" + "\n    ".join(also_copy),
        # -p no:randomly etc. are not installed; -x is mutmut's own; no cache provider: the
        # mutants must not share pytest's last-failed state.
        "pytest_add_cli_args=" + "\n    ".join(["-p", PROFILE_PLUGIN, "-p", "no:cacheprovider", "-q"]),
        "pytest_add_cli_args_test_selection=" + "\n    ".join(tests),
        "use_git_change_detection=false",
        "",
    ]
    (work / "setup.cfg").write_text("\n".join(lines))
    # Without a [tool.mutmut] table mutmut reads setup.cfg; drop one if the project gains it.
    pyproject = work / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text()
        pyproject.write_text(re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text))


def generate(work: Path, python: str) -> dict[str, list[str]]:
    """Generate the mutants (no test run); return their names per module."""
    script = (
        "import os, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from mutmut.__main__ import create_mutants\n"
        "from mutmut.utils.file_utils import copy_src_dir, copy_also_copy_files\n"
        "os.makedirs('mutants', exist_ok=True)\n"
        "copy_src_dir(); copy_also_copy_files(); create_mutants(1)\n"
    )
    done = subprocess.run([python, "-c", script], cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"mutmut could not generate mutants:\n{done.stderr[-2000:]}")
    return {module: list(_read_meta(work, module)) for module in _modules_in(work)}


def _modules_in(work: Path) -> list[str]:
    return sorted(
        str(p.relative_to(work / "mutants"))[: -len(".meta")] for p in work.glob("mutants/**/*.meta")
    )


def _read_meta(work: Path, module: str) -> dict[str, int | None]:
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    data: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return data


def spread(names: Sequence[str], limit: int | None) -> list[str]:
    """At most ``limit`` of ``names``, evenly spread over them (so over the whole module)."""
    if limit is None or len(names) <= limit:
        return list(names)
    step = len(names) / limit
    return [names[int(i * step)] for i in range(limit)]


def run_mutmut(work: Path, python: str, names: Sequence[str], jobs: int) -> None:
    """``mutmut run`` on ``names`` in ``work``, with a status line every 15 seconds."""
    mutmut = [python, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]
    log_path = work / "mutmut.log"
    env = {**os.environ, "HYPOTHESIS_PROFILE": "mutation", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    next_report = started + 15
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*mutmut, "run", "--max-children", str(jobs), *names],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_report:
                    next_report += 15
                    print(f"  [{time.monotonic() - started:5.0f} s] {_progress(log_path)}", flush=True)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(10)
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        sys.exit(f"mutmut run failed (exit {proc.returncode}); the end of {log_path}:\n{tail}")


def _progress(log_path: Path) -> str:
    text = log_path.read_text(errors="replace")
    found = re.findall(
        r"(\d+/\d+)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+\S+\s+(\d+)\s+\S+\s+(\d+)", text
    )
    if found:
        done, killed, _no_tests, timeout, _suspicious, survived = found[-1]
        return f"{done} mutants, {int(killed) + int(timeout)} killed, {survived} survived"
    phases = re.findall(
        r"(Generating mutants|Running stats|Running clean tests|Running forced fail test)", text
    )
    return phases[-1].lower() if phases else "starting"


def _earlier_run(work: Path, modules: Sequence[str]) -> tuple[dict[str, int | None], list[str], str]:
    """The verdicts, mutant names and options of the last run in ``work`` on the same sources."""
    record = work / "run.json"
    if not record.exists():
        sys.exit(f"no finished run in {work} to re-run the survivors of")
    last = json.loads(record.read_text())
    verdicts: dict[str, int | None] = {}
    for module in modules:
        copy = work / module
        if not copy.exists() or copy.read_bytes() != (ROOT / module).read_bytes():
            sys.exit(f"{module} changed since the last run in {work}: run all its mutants again")
        verdicts.update(_read_meta(work, module))
    names = [n for n in last["names"] if n in verdicts]
    if not names:
        sys.exit(f"the last run in {work} did not cover {', '.join(modules)}")
    return verdicts, names, str(last["options"]) + "; survivors re-run after new tests"


def _keep_verdicts(work: Path, modules: Sequence[str], verdicts: dict[str, int | None]) -> None:
    """Write the earlier run's verdicts of the mutants not re-run into mutmut's files."""
    for module in modules:
        meta = work / "mutants" / (module + ".meta")
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        codes.update({name: code for name, code in verdicts.items() if name in codes})
        meta.write_text(json.dumps(data, indent=4))


def collect(work: Path, python: str, modules: Sequence[str], names: set[str]) -> list[ModuleResult]:
    """The verdict of every mutant that was run, with the diff and line of each survivor."""
    results = []
    for module in modules:
        result = ModuleResult(module)
        for key, code in _read_meta(work, module).items():
            if key in names:
                result.mutants.append(Mutant(key, module, _status(code)))
        diffs = _diffs(work, python, [m.name for m in result.survivors])
        for mutant in result.survivors:
            mutant.diff = diffs.get(mutant.name, "")
            mutant.line = _line(work / module, mutant)
            mutant.equivalent = _equivalent(mutant)
        results.append(result)
    return results


def _diffs(work: Path, python: str, names: Sequence[str]) -> dict[str, str]:
    """mutmut's diff of each mutant (from its function's first line), in one process."""
    if not names:
        return {}
    script = (
        "import json, sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "print(json.dumps({n: get_diff_for_mutant(n) for n in json.load(sys.stdin)}))\n"
    )
    done = subprocess.run(
        [python, "-c", script], cwd=work, input=json.dumps(list(names)), capture_output=True, text=True
    )
    if done.returncode == 0:
        found: dict[str, str] = json.loads(done.stdout)
    else:  # mutmut's internals moved: one `mutmut show` per mutant
        found = {}
        for name in names:
            shown = subprocess.run(
                [python, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())", "show", name],
                cwd=work,
                capture_output=True,
                text=True,
            )
            found[name] = shown.stdout
    diffs = {}
    for name, text in found.items():
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("@@")), len(lines))
        diffs[name] = "\n".join(lines[start:])
    return diffs


def _changed(diff: str, sign: str) -> tuple[str, ...]:
    return tuple(
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith(sign) and not line.startswith(sign * 3)
    )


def _line(path: Path, mutant: Mutant) -> int | None:
    """The source line of the mutant's first changed line (mutmut's diff counts from the function)."""
    hunk = re.search(r"^@@ -(\d+)", mutant.diff, re.M)
    function = _function_start(path, mutant.name)
    if hunk is None or function is None:
        return None
    offset = int(hunk.group(1))
    for line in mutant.diff.splitlines()[1:]:
        if line.startswith("-"):
            break
        if line.startswith(" "):
            offset += 1
    return function + offset - 1


#: A mutant's name: module, then ``x_<function>`` or ``xǁ<class>ǁ<method>``, then its number.
_KEY = re.compile(r"\.x(?:ǁ(\w+)ǁ|_)(\w+?)__mutmut_\d+$")


def _function_start(path: Path, key: str) -> int | None:
    """First line (decorators included) of the function a mutant key names."""
    match = _KEY.search(key)
    if match is None or not path.exists():
        return None
    cls, func = match.group(1), match.group(2)
    tree = ast.parse(path.read_text())
    scopes: Iterable[ast.AST] = [tree]
    if cls:
        scopes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    for scope in scopes:
        for node in getattr(scope, "body", []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func:
                return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return None


def _function_of(key: str) -> str:
    """``harness.m.x_loads_strict__mutmut_3`` -> ``loads_strict``; ``...xǁMessageǁjson__mutmut_1``
    -> ``Message.json``."""
    match = _KEY.search(key)
    if match is None:
        return ""
    return f"{match.group(1)}.{match.group(2)}" if match.group(1) else match.group(2)


def _equivalent(mutant: Mutant) -> Equivalent | None:
    removed, added = _changed(mutant.diff, "-"), _changed(mutant.diff, "+")
    function = _function_of(mutant.name)
    for mark in EQUIVALENT:
        if (mark.module, mark.function, mark.removed, mark.added) == (
            mutant.module,
            function,
            removed,
            added,
        ):
            return mark
    return None


# -- the report ------------------------------------------------------------------------


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def score_line(result: ModuleResult) -> str:
    non_equivalent = result.checked - result.equivalent
    return (
        f"killed {result.killed} / {result.checked} ({_percent(result.killed, result.checked)}); "
        f"killed / non-equivalent {result.killed} / {non_equivalent} "
        f"({_percent(result.killed, non_equivalent)}); {result.equivalent} equivalent, "
        f"{len(result.survivors) - result.equivalent} surviving"
    )


def print_report(results: Sequence[ModuleResult]) -> None:
    for result in results:
        print(f"\n{result.module}: {score_line(result)}")
        for mutant in result.survivors:
            mark = f"  [equivalent: {mutant.equivalent.why}]" if mutant.equivalent else ""
            print(f"\n  {mutant.module}:{mutant.line or '?'}  {mutant.status}  {mutant.name}{mark}")
            print("\n".join("    " + line for line in mutant.diff.splitlines()))


def markdown_section(result: ModuleResult, when: str, options: str) -> str:
    lines = [f"## {result.module}", "", f"Run {when} ({options}).", "", f"Score: {score_line(result)}.", ""]
    survivors = result.survivors
    if not survivors:
        lines += ["No survivors.", ""]
    for mutant in sorted(survivors, key=lambda m: (m.equivalent is None, m.line or 0)):
        verdict = f"equivalent: {mutant.equivalent.why}" if mutant.equivalent else f"**{mutant.status}**"
        lines += [f"- `{mutant.module}:{mutant.line or '?'}` {verdict}", "", "  ```diff"]
        lines += ["  " + line for line in mutant.diff.splitlines()]
        lines += ["  ```", ""]
    return "\n".join(lines)


HEADER = """# Mutation testing results

Written by `python benchmarks/mutation.py --results benchmarks/mutation-results.md`: one
section per module, replaced when that module is run again. "killed / non-equivalent"
leaves out the survivors marked equivalent in `EQUIVALENT` (benchmarks/mutation.py), each
with its reason. A partial run (`--max-mutants`) says so in its section. Sections that
are not a module's (notes) are kept as they are.
"""


def write_results(path: Path, results: Sequence[ModuleResult], options: str) -> None:
    """Replace the sections of the modules in ``results`` in ``path``; keep the others."""
    sections: dict[str, str] = {}
    if path.exists():
        for chunk in re.split(r"(?m)^(?=## )", path.read_text()):
            if chunk.startswith("## "):
                sections[chunk.split("\n", 1)[0][3:].strip()] = chunk.rstrip() + "\n"
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    for result in results:
        sections[result.module] = markdown_section(result, f"{when}, commit {commit}", options)
    summary = ["| module | score | run |", "| --- | --- | --- |"]
    for module, text in sorted(sections.items()):
        score = re.search(r"^Score: (.*)\.$", text, re.M)
        run = re.search(r"^Run (.*)\.$", text, re.M)
        if score is None:  # a section of notes, kept as it is
            continue
        summary.append(
            f"| `{module}` | {score.group(1) if score else '?'} | {run.group(1) if run else '?'} |"
        )
    body = "\n".join(sections[m].rstrip() + "\n" for m in sorted(sections))
    path.write_text(HEADER + "\n" + "\n".join(summary) + "\n\n" + body)


# -- command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--module",
        action="append",
        help="a module to mutate, relative to the repository (repeatable; default: "
        + " ".join(DEFAULT_MODULES)
        + ")",
    )
    parser.add_argument(
        "--tests", action="append", help="a test file or glob to run (repeatable; default: the codec's tests)"
    )
    parser.add_argument(
        "--max-mutants", type=int, help="at most this many mutants per module, spread over it"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="mutants run at once (default 1: the machine is shared)"
    )
    parser.add_argument(
        "--examples", type=int, default=40, help="Hypothesis examples per property test (default 40)"
    )
    parser.add_argument("--work", type=Path, default=WORK, help=f"work directory (default {WORK})")
    parser.add_argument(
        "--results", type=Path, help="write the score and survivors of each module run to this file"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter with harness's deps and mutmut"
    )
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="after adding tests: run again only the mutants the last run (same modules, same "
        "sources) did not kill, and report the whole module",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="report the last run in the work directory again (after marking equivalents), run nothing",
    )
    args = parser.parse_args(argv)
    if args.max_mutants is not None and args.max_mutants < 1:
        parser.error("--max-mutants must be >= 1")

    modules = []
    for module in args.module or DEFAULT_MODULES:
        if (ROOT / module).is_file():
            modules.append(module)
        else:
            print(f"note: {module} is not in the tree, skipped")
    if not modules:
        parser.error("none of the modules exists")
    tests = sorted(
        {str(p.relative_to(ROOT)) for glob in args.tests or DEFAULT_TESTS for p in ROOT.glob(glob)}
    )
    if not tests:
        parser.error("no test file matches")
    check = subprocess.run([args.python, "-c", "import mutmut"], capture_output=True)
    if check.returncode != 0:
        sys.exit("mutmut is not installed: pip install -e '.[mutation]'")

    options = f"{len(tests)} test files, {args.examples} examples"
    if args.max_mutants:
        options += f", partial: at most {args.max_mutants} mutants per module"
    started = time.monotonic()
    if args.report_only:
        record = args.work / "run.json"
        if not record.exists():
            sys.exit(f"no finished run in {args.work}: run without --report-only first")
        last = json.loads(record.read_text())
        names, options = last["names"], last["options"]
    else:
        earlier: dict[str, int | None] = {}
        if args.rerun_survivors:
            earlier, names, options = _earlier_run(args.work, modules)
        print(f"mutating {', '.join(modules)}\nwith {len(tests)} test files; work directory {args.work}")
        prepare(args.work, modules, tests, args.examples)
        generated = generate(args.work, args.python)
        if args.rerun_survivors:
            if set(names) - {n for found in generated.values() for n in found}:
                sys.exit("the mutants differ from the last run's: run them all again")
            to_run = [n for n in names if _status(earlier.get(n)) not in {"killed", "timeout"}]
            print(f"  re-running {len(to_run)} of {len(names)} mutants (the others were killed)")
        else:
            names = []
            for module in modules:
                chosen = spread(generated.get(module, []), args.max_mutants)
                print(f"  {module}: {len(chosen)} of {len(generated.get(module, []))} mutants", flush=True)
                names += chosen
            to_run = names
        if not names:
            sys.exit("no mutants generated")
        if to_run:
            run_mutmut(args.work, args.python, to_run, args.jobs)
        if earlier:
            _keep_verdicts(args.work, modules, {n: earlier[n] for n in names if n not in set(to_run)})
        (args.work / "run.json").write_text(json.dumps({"names": names, "options": options}))
    results = collect(args.work, args.python, modules, set(names))
    print_report(results)
    print(f"\n{len(names)} mutants, {time.monotonic() - started:.0f} s")
    if args.results:
        write_results(args.results, results, options)
        print(f"results written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
