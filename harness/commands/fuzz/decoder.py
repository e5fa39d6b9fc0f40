"""``harness fuzz decoder MODULE:FACTORY``: fuzz your own decoder with atheris (libFuzzer).

The decoder is the adapter of :mod:`harness.testing` (``factory()`` gives an object with
``feed(data)`` and ``close()``). Every input is a :class:`harness.fuzzing.FuzzInput` (a chunking
prefix, then the byte stream), mutated by the structure-aware mutator
(:class:`harness.fuzzing.StructureMutator`), and judged by
:func:`harness.testing.compare_decoder`: the same frames, chunk by chunk, and the same verdict
as harness's decoder on the same bytes and chunks, fed whole and split. Only the user's
module (its top-level package) is instrumented for coverage.

Defaults, each only where the command line does not say otherwise: the working corpus
``.harness/fuzz/corpus/<target>/`` followed by the seeds of :func:`harness.fuzzing.seed_corpus`
(written once to ``.harness/fuzz/seeds/``), the dictionary ``lpjson.dict`` shipped in this
package (a copy of the checkout's ``fuzz/lpjson.dict``), crash files in
``.harness/fuzz/artifacts/<target>/``. ``-fork``/``-jobs``/``-workers`` re-run this command
through a small ``sh`` wrapper in ``.harness/fuzz/``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.resources
import io
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness._extras import require

NAME = "harness fuzz decoder"
WORK = Path(".harness") / "fuzz"
_PARALLEL_FLAGS = {"fork", "jobs", "workers"}
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
}

DESCRIPTION = """\
Fuzz a decoder of your own with atheris (libFuzzer), differential against harness's decoder:
every input (a byte stream and the points where it is cut) must give the same messages, each
from the feed() call that completes it, and the same verdict (an error or not, the error
code where the factory has an error_code attribute) as harness.Decoder, fed whole and split.

MODULE:FACTORY names the factory (a class or function) in a module importable from the
working directory, e.g. mydecoder:Decoder or tests.decoders.strict:factory. Everything after
it goes to libFuzzer: flags (-runs=N, -max_total_time=S, -seed=N, -fork=N, -jobs=N, -dict=F,
-artifact_prefix=P, -help=1 lists them all), corpus directories, or crash files to replay.
Defaults: corpus .harness/fuzz/corpus/TARGET/ plus the harness seeds, the lpjson dictionary,
crash files in .harness/fuzz/artifacts/TARGET/. Exit status: 0 nothing found, libFuzzer's
(non-zero) after a crash, 2 on bad arguments.
"""


class TargetError(ValueError):
    """MODULE:FACTORY cannot be used (the one line the command prints)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "decoder",
        help="fuzz your decoder (MODULE:FACTORY) against harness's, with atheris",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--max-content-length",
        type=int,
        default=None,
        metavar="N",
        help="your decoder's content limit (docs/PROTOCOL.md#l1; default harness's, 1 MiB)",
    )
    parser.add_argument(
        "--bytes",
        action="store_true",
        help="plain libFuzzer byte mutation instead of the structure-aware mutator",
    )
    parser.add_argument("target", metavar="MODULE:FACTORY", help="the factory of your decoder")
    parser.add_argument(
        "libfuzzer", nargs=argparse.REMAINDER, metavar="...", help="libFuzzer flags and corpus"
    )
    parser.set_defaults(func=run)


def _slug(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-") or "decoder"


def load_factory(target: str) -> Callable[[], Any]:
    """The factory named ``MODULE:FACTORY``, imported with the working directory on the path."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"{target!r} is not MODULE:FACTORY (e.g. mydecoder:Decoder)")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise TargetError(f"no module {module_name!r} importable from {cwd}") from None
        raise TargetError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise TargetError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise TargetError(f"module {module_name} has no {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise TargetError(f"{target} is not callable ({type(factory).__name__}): name a class or function")
    try:
        decoder = factory()
    except Exception as exc:
        raise TargetError(f"{target}() failed: {type(exc).__name__}: {exc}") from None
    missing = [name for name in ("feed", "close") if not callable(getattr(decoder, name, None))]
    if missing:
        raise TargetError(
            f"{target}() returned a {type(decoder).__name__}, which has no {' or '.join(missing)}()"
        )
    return factory  # type: ignore[no-any-return]


def _flag_names(args: list[str]) -> set[str]:
    return {a[1:].split("=", 1)[0] for a in args if a.startswith("-") and not a.startswith("--")}


def _absolute(arg: str) -> str:
    if arg.startswith("-") and not arg.startswith("--") and "=" in arg:
        name, value = arg[1:].split("=", 1)
        if name in _PATH_FLAGS and value:
            tail = os.sep if value.endswith(("/", os.sep)) else ""
            return f"-{name}={os.path.abspath(value)}{tail}"
        return arg
    return arg if arg.startswith("-") else os.path.abspath(arg)


def dictionary() -> Path:
    """The lpjson dictionary shipped with harness (package data)."""
    return Path(str(importlib.resources.files(__package__ or "harness.commands.fuzz") / "lpjson.dict"))


def write_seeds(directory: Path) -> Path:
    """The seed corpus of :func:`harness.fuzzing.seed_corpus`, written once to ``directory``."""
    if directory.is_dir() and any(directory.iterdir()):
        return directory
    from harness.fuzzing import seed_corpus

    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seed_corpus().items():
        (directory / name).write_bytes(data)
    return directory


def _wrapper(args: argparse.Namespace, slug: str) -> str:
    """An executable ``sh`` script that re-runs this command (libFuzzer's child processes)."""
    options = (
        [] if args.max_content_length is None else ["--max-content-length", str(args.max_content_length)]
    )
    if args.bytes:
        options.append("--bytes")
    command = [sys.executable, "-m", "harness", "fuzz", "decoder", *options, args.target]
    path = (WORK / f"{slug}.sh").resolve()
    text = f'#!/bin/sh\ncd {shlex.quote(os.getcwd())} || exit 2\nexec {shlex.join(command)} "$@"\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    return str(path)


def build_argv(args: argparse.Namespace, slug: str) -> list[str]:
    """libFuzzer's command line: the user's flags and corpus, plus the defaults they did not set."""
    given = [a for a in args.libfuzzer if a not in ("--bytes", "--structure")]
    names = _flag_names(given)
    positional = [a for a in given if not a.startswith("-")]
    extra: list[str] = []
    if "dict" not in names:
        extra.append(f"-dict={dictionary()}")
    if not names & {"artifact_prefix", "exact_artifact_path"}:
        artifacts = (WORK / "artifacts" / slug).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        extra.append(f"-artifact_prefix={artifacts}{os.sep}")
    corpus: list[str] = []
    if not positional and not names & {"merge", "set_cover_merge"}:
        work = (WORK / "corpus" / slug).resolve()
        work.mkdir(parents=True, exist_ok=True)
        corpus = [str(work), str(write_seeds((WORK / "seeds").resolve()))]
    argv0 = _wrapper(args, slug) if names & _PARALLEL_FLAGS else "harness-fuzz-decoder"
    if "jobs" in names:
        # libFuzzer writes fuzz-<n>.log into the working directory: keep them under .harness/fuzz/
        given = [_absolute(a) for a in given]
        logs = WORK.resolve()
        logs.mkdir(parents=True, exist_ok=True)
        os.chdir(logs)
        print(f"{NAME}: -jobs: libFuzzer's fuzz-<n>.log files go to {logs}", file=sys.stderr)
    return [argv0, *given, *extra, *corpus]


def make_target(
    factory: Callable[[], Any],
    max_content_length: int,
    error_code: Callable[[BaseException], str | None] | None,
) -> Callable[[bytes], None]:
    """The fuzz target: one input, judged whole and split; an AssertionError on a difference."""
    from harness.fuzzing import FuzzInput, split
    from harness.testing import compare_decoder

    def target(data: bytes) -> None:
        fuzz = FuzzInput.decode(data)
        payload = fuzz.payload
        cases = [[payload]]
        cuts = fuzz.cuts
        if cuts:
            cases.append(split(payload, cuts))
        for chunks in cases:
            failure = compare_decoder(
                factory,
                payload,
                chunks,
                max_content_length=max_content_length,
                error_code=error_code,
                check="fuzz",
            )
            if failure is not None:
                raise AssertionError(f"your decoder differs from harness's decoder:\n{failure}")

    return target


def run(args: argparse.Namespace) -> int:
    from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH

    if args.max_content_length is not None and args.max_content_length < 0:
        print(f"{NAME}: --max-content-length must be >= 0", file=sys.stderr)
        return 2
    require(NAME, "atheris")
    require(NAME, "hypothesis")  # the seeds are drawn from harness.strategies
    import atheris

    module_name = args.target.partition(":")[0]
    # atheris says which modules it instruments: shown once the target loads, so that a bad
    # MODULE:FACTORY is the one line that says why.
    notes = io.StringIO()
    try:
        with (
            contextlib.redirect_stderr(notes),
            atheris.instrument_imports(include=[module_name.split(".")[0]]),
        ):
            factory = load_factory(args.target)
    except TargetError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return 2
    sys.stderr.write(notes.getvalue())
    mapped = getattr(factory, "error_code", None)
    error_code = mapped if callable(mapped) else None
    limit = DEFAULT_MAX_CONTENT_LENGTH if args.max_content_length is None else args.max_content_length
    slug = _slug(args.target)
    argv = build_argv(args, slug)
    kwargs: dict[str, Any] = {}
    if not args.bytes and "--bytes" not in args.libfuzzer:
        from harness.fuzzing import StructureMutator

        # Look atheris.Mutate up on every call: Fuzz() swaps in the real one.
        mutator = StructureMutator(lambda data, max_size: atheris.Mutate(data, max_size))
        kwargs = {"custom_mutator": mutator.mutate, "custom_crossover": mutator.crossover}
    atheris.Setup(argv, make_target(factory, limit, error_code), **kwargs)
    gc.collect()
    gc.freeze()
    atheris.Fuzz()
    return 0  # pragma: no cover - Fuzz() exits the process
