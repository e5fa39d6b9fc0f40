"""The command line shared by fuzz_decoder.py and fuzz_server.py (libFuzzer via atheris).

What it adds to libFuzzer's own command line, only where the user did not say otherwise:

- no corpus directory or input file given: ``fuzz/work/<target>/`` (git-ignored, receives
  every new input) followed by the committed seeds ``fuzz/seeds/`` (read only);
- ``-dict=fuzz/lpjson.dict`` unless ``-dict`` is given;
- ``-artifact_prefix=fuzz/artifacts/<target>/`` unless ``-artifact_prefix`` or
  ``-exact_artifact_path`` is given;
- ``-fork=N`` / ``-jobs=N`` / ``-workers=N``: libFuzzer starts its child processes
  through ``sh`` with ``argv[0]`` as the command, so ``argv[0]`` becomes a small
  executable wrapper (``fuzz/work/<target>.sh``) that runs this script with the
  same interpreter (a virtual environment need not be activated);
- ``-jobs=N`` started inside the checkout: libFuzzer writes ``fuzz-<n>.log`` into the
  current directory, so relative paths are made absolute and the run moves to
  ``fuzz/work/``.

``--bytes`` selects plain libFuzzer byte mutation, ``--structure`` (the default) the
structure-aware mutator of :mod:`harness.fuzzing.mutator`. libFuzzer ignores flags that start
with ``--``, and fork children receive them too.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import importlib.util
import os
import pkgutil
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
SEEDS = FUZZ_DIR / "seeds"
DICTIONARY = FUZZ_DIR / "lpjson.dict"
WORK = FUZZ_DIR / "work"
ARTIFACTS = FUZZ_DIR / "artifacts"

# Flags whose value is a path, made absolute when a -jobs run moves to fuzz/work/.
_PATH_FLAGS = {
    "artifact_prefix",
    "exact_artifact_path",
    "dict",
    "merge_control_file",
    "features_dir",
    "stop_file",
    "mutation_graph_file",
    "data_flow_trace",
    "seed_inputs",
    "merge_inner",
}
_PARALLEL_FLAGS = {"fork", "jobs", "workers"}

USAGE = """\
usage: {script} [--structure | --bytes] [libFuzzer flags] [corpus dirs or input files]

Fuzzes {what}. With no corpus directory, the working corpus is fuzz/work/{name}/
(git-ignored), seeded from fuzz/seeds/; crashes go to fuzz/artifacts/{name}/.
A file argument replays that input. Every libFuzzer flag passes through
(-runs, -max_total_time, -fork, -jobs, -seed, -minimize_crash, ...); -help=1
lists them. --bytes: plain byte mutation; --structure (default): the
structure-aware mutator.
"""


#: The package that holds the invariant checks, the seeds and the mutator: never instrumented.
CHECKS_PACKAGE = "harness.fuzzing"


def check_modules() -> list[str]:
    """``harness.fuzzing`` and every module in it, found without importing any of them.

    atheris's ``exclude`` names whole modules, not packages, so each one is listed.
    """
    harness = importlib.util.find_spec("harness")  # a top-level name: found, not imported
    if harness is None or not harness.submodule_search_locations:
        raise SystemExit("harness is not installed: run pip install -e '.[fuzz]' in the checkout")
    package = [str(Path(p) / "fuzzing") for p in harness.submodule_search_locations]
    return [CHECKS_PACKAGE, *sorted(f"{CHECKS_PACKAGE}.{m.name}" for m in pkgutil.iter_modules(package))]


def import_instrumented(modules: Iterable[str]) -> None:
    """Import ``modules`` (the code under test) with atheris's coverage instrumentation.

    Every harness module they import is instrumented too, except the invariant checks and
    the mutator (:data:`CHECKS_PACKAGE`): their branches must not count as coverage. Call it
    before anything imports ``harness``.
    """
    import atheris

    with atheris.instrument_imports(include=["harness"], exclude=check_modules()):
        for module in modules:
            importlib.import_module(module)


def _flag_name(arg: str) -> str:
    return arg[1:].split("=", 1)[0]


def _absolute(arg: str) -> str:
    if arg.startswith("-") and not arg.startswith("--") and "=" in arg:
        name, value = arg[1:].split("=", 1)
        if name in _PATH_FLAGS and value and not value.startswith("@"):
            # artifact_prefix is a prefix: keep its trailing slash
            tail = os.sep if value.endswith(("/", os.sep)) else ""
            return f"-{name}={os.path.abspath(value)}{tail}"
        return arg
    if not arg.startswith("-"):
        return os.path.abspath(arg)
    return arg


def _inside_repo(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO)
    except ValueError:
        return False
    return True


def _wrapper(name: str, script: Path) -> str:
    """An executable ``sh`` script that runs ``script`` with this interpreter."""
    directory = WORK if not any(c.isspace() for c in str(WORK)) else Path(os.environ.get("TMPDIR", "/tmp"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sh"
    text = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "$@"\n'
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    return str(path)


def build_argv(name: str, script: Path, argv: list[str]) -> list[str]:
    """libFuzzer's command line for ``argv`` (see the module docstring)."""
    if getattr(sys, "frozen", False):
        # Packaged by PyInstaller (OSS-Fuzz's compile_python_fuzzer, .clusterfuzzlite/build.sh):
        # ClusterFuzzLite passes its own corpus, dictionary and artifact paths; add nothing.
        return list(argv)
    args = argv[1:]
    names = {_flag_name(a) for a in args if a.startswith("-") and not a.startswith("--")}
    positional = [a for a in args if not a.startswith("-")]
    extra: list[str] = []
    if "dict" not in names:
        extra.append(f"-dict={DICTIONARY}")
    if not names & {"artifact_prefix", "exact_artifact_path"}:
        (ARTIFACTS / name).mkdir(parents=True, exist_ok=True)
        extra.append(f"-artifact_prefix={ARTIFACTS / name}{os.sep}")
    if not positional and not names & {"merge", "set_cover_merge"}:
        (WORK / name).mkdir(parents=True, exist_ok=True)
        positional_extra = [str(WORK / name), str(SEEDS)]
    else:
        positional_extra = []
    argv0 = argv[0]
    if names & _PARALLEL_FLAGS:
        argv0 = _wrapper(name, script)
    if "jobs" in names and _inside_repo(Path.cwd()):
        args = [_absolute(a) for a in args]
        WORK.mkdir(parents=True, exist_ok=True)
        os.chdir(WORK)
        print(f"INFO: -jobs: libFuzzer's fuzz-<n>.log files go to {WORK}", file=sys.stderr)
    return [argv0, *args, *extra, *positional_extra]


def artifact_path(argv: list[str], data: bytes) -> str:
    """Where libFuzzer writes ``data`` when it crashes, given libFuzzer's command line ``argv``."""
    prefix = ""
    for arg in argv[1:]:
        if arg.startswith("-exact_artifact_path="):
            return arg.split("=", 1)[1]
        if arg.startswith("-artifact_prefix="):
            prefix = arg.split("=", 1)[1]
    return f"{prefix}crash-{hashlib.sha1(data).hexdigest()}"


def capture_command(path: str, pcap_options: str = "") -> str:
    """The command that turns the fuzz input at ``path`` into a capture (shell-quoted)."""
    out = shlex.quote(f"{path}.pcapng")
    options = f" {pcap_options}" if pcap_options else ""
    return f"harness pcap from-bytes --fuzz-input{options} {shlex.quote(path)} --out {out}"


def with_crash_hint(
    target: Callable[[bytes], None], argv: list[str], pcap_options: str = ""
) -> Callable[[bytes], None]:
    """``target``, printing on a crash the command that turns the crash file into a capture.

    The hint comes just before atheris's traceback, and names the file libFuzzer then writes
    (``crash-<sha1 of the input>`` under the artifact prefix, or ``-exact_artifact_path``).
    """

    def hinted(data: bytes) -> None:
        try:
            target(data)
        except BaseException:
            command = capture_command(artifact_path(argv, data), pcap_options)
            print(f"INFO: to open this input in Wireshark: {command}", file=sys.stderr, flush=True)
            raise

    return hinted


def main(name: str, what: str, target: Callable[[bytes], None], script: str, pcap_options: str = "") -> None:
    """Run libFuzzer on ``target`` with the command line of ``sys.argv``.

    ``pcap_options``: extra ``harness pcap from-bytes`` options for the crash hint.
    """
    import atheris

    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(USAGE.format(script=sys.argv[0], what=what, name=name))
        return
    argv = build_argv(name, Path(script).resolve(), sys.argv)
    kwargs = {}
    if "--bytes" not in argv:
        from harness.fuzzing import StructureMutator

        # Look atheris.Mutate up on every call: Fuzz() swaps in the real one.
        mutator = StructureMutator(lambda data, max_size: atheris.Mutate(data, max_size))
        kwargs = {"custom_mutator": mutator.mutate, "custom_crossover": mutator.crossover}
    atheris.Setup(argv, with_crash_hint(target, argv, pcap_options), **kwargs)
    # Everything imported so far lives until exit: take it out of the cyclic collector's
    # reach, so that its full collections walk only what the inputs allocate.
    gc.collect()
    gc.freeze()
    atheris.Fuzz()
