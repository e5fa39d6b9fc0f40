"""The codec the invariants read with: a private copy of the codec modules, never instrumented.

The decoder invariants compare what the decoder under test did with a reference reading of
the same bytes (the strict reader's reading of each raw header and ``text/json`` content, the
header rules, the round trip's decode), and the structure-aware mutator reads frames. When a
fuzzer instruments the codec for coverage (``fuzz/fuzz_decoder.py``), those readings would run
through the instrumented modules: each of them would cost atheris's tracing (a call per
basic block and per comparison, several times the cost of the code itself) and count as
coverage of the code under test although the decoder under test never ran it.

So the reference readings run in copies of ``harness.strictjson``, ``harness.header``,
``harness.frames``, ``harness.message`` and ``harness.decoder``: the same code, as the import
system finds it (source, cached bytecode or a PyInstaller archive), executed once more as
modules of their own (``harness.fuzzing.reference.<name>``), importing
each other and sharing only :mod:`harness.errors` with the code under test (so that
``ProtocolError`` is one class for both). Same code, same verdicts; no instrumentation, and a
test that patches the codec under test leaves the reference as it was.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Callable, Mapping
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from harness import decoder as _decoder
    from harness import frames as _frames
    from harness import strictjson as _strictjson

__all__ = [
    "COPIED",
    "Decoder",
    "FrameReader",
    "JSONViolation",
    "check_header",
    "loads_strict",
    "parse_header_strict",
    "prefix",
]

#: The modules copied, each after those it imports.
COPIED = ("harness.strictjson", "harness.header", "harness.frames", "harness.message", "harness.decoder")
_PREFIX = f"{__name__}."


def _code(name: str) -> tuple[CodeType, str | None]:
    """The bytecode of module ``name`` as its finder gives it, and where it comes from.

    Not the loaded module's functions, which a fuzzer may have instrumented: atheris patches
    the code its own loader returns, so its finder is skipped. The code comes from the
    source file or its cached bytecode, or from a PyInstaller archive (where no source is).
    """
    package = importlib.import_module(name.rpartition(".")[0])
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None or type(finder).__module__.split(".")[0] == "atheris":
            continue
        spec = find_spec(name, package.__path__)
        get_code = getattr(spec.loader, "get_code", None) if spec is not None else None
        code = get_code(name) if get_code is not None else None
        if spec is not None and isinstance(code, CodeType):
            return code, spec.origin
    raise ImportError(f"no finder gives the code of {name}")


def _copy(name: str, copies: Mapping[str, ModuleType]) -> ModuleType:
    """Execute the code of module ``name`` as a new module whose imports of ``copies`` get the copies."""
    code, origin = _code(name)
    module = ModuleType(_PREFIX + name.rsplit(".", 1)[1])
    real_import = builtins.__import__

    def import_copy(
        what: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: tuple[str, ...] | list[str] = (),
        level: int = 0,
    ) -> ModuleType:
        if fromlist and level == 0 and what in copies:
            return copies[what]  # ``from harness.frames import X`` reads X from the copy
        return real_import(what, globals, locals, fromlist, level)

    module.__file__ = origin
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": import_copy}
    sys.modules[module.__name__] = module  # dataclasses look their class's module up there
    exec(code, module.__dict__)
    return module


def _copy_all() -> dict[str, ModuleType]:
    copies: dict[str, ModuleType] = {}
    for name in COPIED:
        copies[name] = _copy(name, copies)
    return copies


_COPIES = _copy_all()

#: :func:`harness.strictjson.loads_strict`, uninstrumented.
loads_strict: Callable[..., Any] = _COPIES["harness.strictjson"].loads_strict
#: The copy's :class:`~harness.strictjson.JSONViolation` (what :data:`loads_strict` raises).
JSONViolation = cast("type[_strictjson.JSONViolation]", _COPIES["harness.strictjson"].JSONViolation)
#: :func:`harness.header.check_header`: the header rules (required keys, their types and values).
check_header: Callable[[dict[str, Any]], int] = _COPIES["harness.header"].check_header
#: :func:`harness.header.parse_header_strict`: the strict reading and the header rules.
parse_header_strict: Callable[..., tuple[dict[str, Any], int]] = _COPIES["harness.header"].parse_header_strict
#: :class:`harness.frames.FrameReader` and :func:`harness.frames.prefix`, for the mutator.
FrameReader = cast("type[_frames.FrameReader]", _COPIES["harness.frames"].FrameReader)
prefix: Callable[[int], bytes] = _COPIES["harness.frames"].prefix
#: :class:`harness.decoder.Decoder`, for the round trip of re-encoded messages.
Decoder = cast("type[_decoder.Decoder]", _COPIES["harness.decoder"].Decoder)
