"""A zoo of lpjson servers written independently of harness, for judging the probe and fuzzer.

Each server is a standalone script (standard library only, plus the zoo's own
``zoolib.py``, which plays the guide's ``libserver.py``): ``python NAME.py HOST PORT``
binds HOST:PORT (PORT may be 0) and prints ``Listening on HOST:PORT`` with the real
port as its first line. :data:`ZOO` describes every one: its style, its bug (one per
buggy server) and the rule of docs/PROTOCOL.md the bug breaks. Every buggy server is
a copy of the correct server of its style with that one bug put in (except
``recv_exact_threads`` and ``guide_app_server``), so ``diff correct_threads.py
duplicate_keys_threads.py`` shows the bug. ``tests/test_zoo_servers.py`` proves each
bug with a hand-written exchange; see ``README.md`` for the table.

The servers' idle timeout is 3 s, or ``$ZOO_IDLE_TIMEOUT`` seconds
(:data:`IDLE_TIMEOUT_ENV`); their content limit is 1 MiB.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUGGY",
    "CORRECT",
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_TIMEOUT_ENV",
    "NEVER_LISTENS",
    "ZOO",
    "ZOO_DIR",
    "ZooServer",
]

ZOO_DIR = Path(__file__).resolve().parent
#: Environment variable that sets the servers' idle timeout, in seconds.
IDLE_TIMEOUT_ENV = "ZOO_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 3.0


@dataclass(frozen=True)
class ZooServer:
    """One server of the zoo.

    ``rule`` is the id of the docs/PROTOCOL.md rule the bug breaks (``None`` for a
    correct server); ``also_breaks`` lists other rules the same bug shows up as.
    ``check`` names the kind of check that should catch it (a probe check's name
    where one exists today). ``guide_profile_ok``: the server should pass
    ``--profile guide`` (its only deviations are one request per connection or the
    guide's lax JSON). ``dies``, ``traceback`` and ``memory_grows`` say what a process
    monitor sees on the bug's input.
    """

    name: str
    style: str
    bug: str | None
    rule: str | None
    check: str
    correct: bool = False
    guide_profile_ok: bool = False
    also_breaks: tuple[str, ...] = ()
    dies: bool = False
    traceback: bool = False
    memory_grows: bool = False

    @property
    def path(self) -> Path:
        return ZOO_DIR / f"{self.name}.py"

    def command(self, host: str = "{host}", port: str = "{port}") -> list[str]:
        """The command that starts it (placeholders by default, as ``harness probe --`` takes)."""
        return [sys.executable, str(self.path), host, str(port)]


_SELECTORS = "selectors loop + Message class (the guide's)"
_THREADS = "thread per connection"
_SOCKETSERVER = "socketserver.ThreadingTCPServer"
_STREAMS = "asyncio streams (start_server)"
_PROTOCOL = "asyncio.Protocol"

_SERVERS = [
    # -- correct -------------------------------------------------------------------
    ZooServer("correct_selectors", _SELECTORS, None, None, "every check passes", True, True),
    ZooServer("correct_threads", _THREADS, None, None, "every check passes", True, True),
    ZooServer("correct_socketserver", _SOCKETSERVER, None, None, "every check passes", True, True),
    ZooServer("correct_asyncio_streams", _STREAMS, None, None, "every check passes", True, True),
    ZooServer("correct_asyncio_protocol", _PROTOCOL, None, None, "every check passes", True, True),
    # -- framing -------------------------------------------------------------------
    ZooServer(
        "one_recv_selectors",
        _SELECTORS,
        "each recv() is parsed as whole messages and an incomplete tail is dropped",
        "F2",
        "split-prefix, split-header, split-content, split-one-byte",
    ),
    ZooServer(
        "recv_exact_threads",
        _THREADS,
        "recv(2), recv(hdrlen), recv(length) are trusted to return exactly that many bytes",
        "F2",
        "split-prefix, split-header, split-content, split-one-byte",
    ),
    ZooServer(
        "split_content_streams",
        _STREAMS,
        "the content is read with reader.read(length), which may return fewer bytes",
        "F2",
        "split-content, split-one-byte",
    ),
    ZooServer(
        "split_header_protocol",
        _PROTOCOL,
        "the JSON header is parsed as soon as the 2-byte prefix is in, whole or not",
        "F2",
        "split-header, split-one-byte",
    ),
    ZooServer(
        "pipeline_drop_selectors",
        _SELECTORS,
        "the receive buffer is reset after each answer: requests pipelined behind it are dropped",
        "F3",
        "pipeline-2, pipeline-100",
        also_breaks=("S1",),
    ),
    ZooServer(
        "one_per_connection_socketserver",
        _SOCKETSERVER,
        "answers one request per connection, then closes (the guide's design); careful otherwise",
        "S1",
        "pipeline-2, pipeline-100 (strict); passes --profile guide",
        guide_profile_ok=True,
    ),
    ZooServer(
        "guide_app_server",
        _SELECTORS,
        "the guide's app-server verbatim: trusts and waits for any content-length",
        "L1",
        "huge-length, violation-content-too-large (also in --profile guide)",
        also_breaks=("L2", "S1", "H3", "H4", "C2", "S3", "S6"),
        traceback=True,
    ),
    # -- limits --------------------------------------------------------------------
    ZooServer(
        "no_length_limit_threads",
        _THREADS,
        "no content-length limit: any declared length is waited for and buffered",
        "L1",
        "huge-length, violation-content-too-large",
    ),
    ZooServer(
        "no_idle_timeout_streams",
        _STREAMS,
        "no idle timeout: a peer that goes quiet mid-request holds its connection forever",
        "L2",
        "idle-timeout (with --idle-timeout SECONDS): half a request, then silence past the idle timeout",
    ),
    ZooServer(
        "unbounded_buffer_protocol",
        _PROTOCOL,
        "never pauses reading: answers to a client that does not read pile up in memory",
        "L3",
        "never-reads with the process monitor's memory bound (new)",
        memory_grows=True,
    ),
    ZooServer(
        "memory_leak_socketserver",
        _SOCKETSERVER,
        "every request is kept in a module-level list that is never trimmed",
        "L3",
        "the process monitor's memory bound over many requests (new)",
        memory_grows=True,
    ),
    # -- header rules --------------------------------------------------------------
    ZooServer(
        "duplicate_keys_threads",
        _THREADS,
        "a repeated key in the JSON header is accepted, the last value winning",
        "H4",
        "violation-duplicate-key (strict); passes --profile guide",
        guide_profile_ok=True,
    ),
    ZooServer(
        "nan_socketserver",
        _SOCKETSERVER,
        "NaN, Infinity and 1e400 are accepted in the JSON header",
        "H3",
        "NaN in an extension header (new; a NaN content-length is still refused); fuzzer",
        guide_profile_ok=True,
    ),
    ZooServer(
        "header_crash_threads",
        _THREADS,
        "a non-object header or one without content-length raises in the thread: traceback, no error message",
        "H5",
        "violation-header-not-object, violation-missing-header-key with the process monitor",
        also_breaks=("H6", "S2"),
        traceback=True,
    ),
    ZooServer(
        "float_length_streams",
        _STREAMS,
        'content-length is converted with int(): 41.0, "41" and true are accepted',
        "H7",
        "invalid header values, per key (new); fuzzer",
    ),
    ZooServer(
        "byteorder_unchecked_protocol",
        _PROTOCOL,
        'byteorder is never checked: "LITTLE", "middle", 7 pass',
        "H7",
        "invalid header values, per key (new); fuzzer",
    ),
    # -- content and the application ------------------------------------------------
    ZooServer(
        "peer_codec_streams",
        _STREAMS,
        "text/json content is decoded with codecs.decode(content, <the peer's codec name>)",
        "C2",
        "codec names outside the allow-list that Python accepts: base64, utf8, cp1252 (new)",
    ),
    ZooServer(
        "traceback_survives_threads",
        _THREADS,
        "undecodable text/json content raises UnicodeDecodeError: traceback printed, internal-error answered",
        "C3",
        "content-undecodable with the process monitor (traceback) and the error code",
        traceback=True,
    ),
    ZooServer(
        "binary_mangled_threads",
        _THREADS,
        'binary content is decoded as UTF-8 with errors="replace" before the answer is built from it',
        "C5",
        "binary content that is not UTF-8 (new); fuzzer",
    ),
    ZooServer(
        "latin1_request_socketserver",
        _SOCKETSERVER,
        "text/json content is decoded as latin-1 whatever its content-encoding",
        "A1",
        "search-dog",
        also_breaks=("C2", "C3"),
    ),
    # -- connections and errors ----------------------------------------------------
    ZooServer(
        "bad_content_closes_selectors",
        _SELECTORS,
        "bad text/json content closes the connection instead of being answered with an error message",
        "S3",
        "content-not-json, content-undecodable, content-bad-encoding with a request behind (new)",
    ),
    ZooServer(
        "exit_on_bad_header_selectors",
        _SELECTORS,
        "a framing or header error calls sys.exit(): the whole server exits",
        "S4",
        "any violation check, with the process monitor",
        dies=True,
    ),
    ZooServer(
        "crash_on_missing_value_selectors",
        _SELECTORS,
        'a search without "value" raises KeyError and the loop catches only OSError: the process dies',
        "S3",
        'the process monitor; {"action": "search"} (new); fuzzer',
        also_breaks=("S4",),
        dies=True,
        traceback=True,
    ),
    ZooServer(
        "half_close_selectors",
        _SELECTORS,
        'recv() == b"" closes the connection at once, dropping answers not yet written',
        "S5",
        "half-close",
    ),
    ZooServer(
        "error_shape_protocol",
        _PROTOCOL,
        'errors are sent as {"result": "Error: ..."} instead of {"error": code, "detail": ...}',
        "S6",
        "every violation check, judging the error message's shape (new)",
    ),
]

#: A server that never listens (it deadlocks at startup), for the probe's bounded wait
#: for readiness; not in :data:`ZOO`, whose servers all answer.
NEVER_LISTENS = ZooServer(
    "never_listens",
    _THREADS,
    "deadlocks on a non-reentrant lock before it listens: alive, silent, never accepting",
    None,
    "the probe's bounded wait for the server to accept (exit 2, one clear line)",
)

#: Every server of the zoo, by name.
ZOO: dict[str, ZooServer] = {server.name: server for server in _SERVERS}
CORRECT = [server for server in _SERVERS if server.correct]
BUGGY = [server for server in _SERVERS if not server.correct]
