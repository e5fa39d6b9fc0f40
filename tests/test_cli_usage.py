"""Every ``harness`` command says what is wrong with its arguments in one line, exit status 2."""

from __future__ import annotations

import pytest

from harness.cli import build_parser, main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "harness: the following arguments are required: COMMAND"),
        (["no-such-command"], "harness: argument COMMAND: invalid choice: 'no-such-command'"),
        (["serve", "--port", "x"], "harness serve: argument --port: not a port number: 'x'"),
        (["serve", "--no-such-option"], "harness serve: unrecognized arguments: --no-such-option"),
        (["request", "127.0.0.1", "x", "search", "a"], "harness request: argument PORT: not a port number"),
        (["request", "127.0.0.1", "80", "search", "a", "--timeout", "soon"], "not a duration: 'soon'"),
        (["load", "-c", "many"], "harness load: argument -c/--connections: invalid int value: 'many'"),
        (["load", "-d", "30s"], "'30s' is a duration; -d is the requests in flight per connection"),
        (["load", "-d", "deep"], "harness load: argument -d/--depth: not an integer: 'deep'"),
        (["load", "-d", "2.5"], "harness load: argument -d/--depth: not an integer: '2.5'"),
        (["load", "--duration", "0"], "harness load: argument --duration: must be a duration > 0, not '0'"),
        (["pcap"], "harness pcap: the following arguments are required: SUBCOMMAND"),
        (
            ["pcap", "from-bytes", "f", "--out", "o", "--chunk", "x"],
            "harness pcap from-bytes: argument --chunk",
        ),
        (["wireshark", "where"], "harness wireshark: argument SUBCOMMAND: invalid choice: 'where'"),
        (["locust", "run"], "harness locust: argument SUBCOMMAND: invalid choice: 'run'"),
        (["fuzz"], "harness fuzz: the following arguments are required: TARGET"),
        (["probe", "--timeout", "x"], "harness probe: argument --timeout"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert err.rstrip().endswith("--help)"), err


@pytest.mark.parametrize(
    ("given", "expected"),
    [("7", 7.0), ("2.5", 2.5), ("500ms", 0.5), ("30s", 30.0), ("2m", 120.0), ("1h", 3600.0)],
)
def test_load_durations_take_the_units_load_tools_use(given: str, expected: float) -> None:
    args = build_parser().parse_args(["load", "--duration", given, "--warmup", given])
    assert (args.duration, args.warmup) == (expected, expected)


def test_every_seconds_option_takes_a_unit() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--idle-timeout", "2m"]).idle_timeout == 120.0
    assert parser.parse_args(["request", "h", "1", "search", "x", "--timeout", "500ms"]).timeout == 0.5
    assert parser.parse_args(["probe", "--idle-timeout", "10s"]).idle_timeout == 10.0
    assert parser.parse_args(["probe", "--start-timeout", "1m", "--", "cmd"]).start_timeout == 60.0
    fuzz = parser.parse_args(["fuzz", "server", "--max-time", "5m", "--idle-timeout", "0", "1", "2"])
    assert (fuzz.max_time, fuzz.idle_timeout) == (300.0, 0.0)
    assert parser.parse_args(["replay", "f.json", "--timeout", "3s"]).timeout == 3.0
