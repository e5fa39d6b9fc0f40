#!/usr/bin/env python3
"""The full-size hostile mix against ``harness serve`` in its own process.

200 slow senders (a byte every half second), 50 clients declaring a 2^40-byte content,
50 clients sending 256 KiB search requests (whose answers echo the value) and never
reading, and, once those are in place, 100 well-behaved clients making 10 requests each,
every answer checked byte for byte. Reports how many well-behaved clients were answered
in full, what happened to each kind of hostile client, and the server's RSS: its peak
(VmHWM from /proc) and its baseline before the mix.

    python benchmarks/bench_hardening.py [--idle-timeout 10] [--json] [--scale 1.0]

Targets (issue 7): 100/100 well-behaved clients answered in full, server RSS < 200 MB.
The server runs with ``--idle-timeout`` (default 10 s here instead of the server's 30 s,
so that the run takes about 15 s); every other limit is the server's default.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import threading

from harness.load import HostileMix, ServerProcess, run_hostile_mix

MiB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-timeout", type=float, default=10.0, help="server idle timeout (s)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every client count")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="server loop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def scaled(n: int) -> int:
        return max(1, round(n * args.scale))

    mix = HostileMix(
        slow_senders=scaled(200),
        slow_interval=0.5,
        huge_declarers=scaled(50),
        huge_length=1 << 40,
        non_readers=scaled(50),
        non_reader_value_size=256 * 1024,
        well_behaved=scaled(100),
        requests_per_client=10,
        timeout=10.0,
        slow_deadline=args.idle_timeout * 2 + 10,
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = mix.slow_senders + mix.huge_declarers + mix.non_readers + mix.well_behaved + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    options = ["--idle-timeout", str(args.idle_timeout), "--log-level", "warning", "--loop", args.loop]
    with ServerProcess.reference(*options) as server:
        host, port = server.address or ("127.0.0.1", 0)
        baseline = server.rss()
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:  # the RSS curve, for the report (VmHWM gives the true peak)
            while not done.wait(0.1):
                samples.append(server.rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = run_hostile_mix(host, port, mix)
        finally:
            done.set()
            sampler.join(5)
        peak = server.peak_rss()
        alive = server.process is not None and server.process.poll() is None

    report = {
        "mix": {
            "slow_senders": mix.slow_senders,
            "huge_declarers": mix.huge_declarers,
            "non_readers": mix.non_readers,
            "well_behaved": mix.well_behaved,
            "server_idle_timeout_s": args.idle_timeout,
        },
        "result": result.to_json(),
        "server_rss_baseline_mb": round(baseline / MiB, 1),
        "server_rss_peak_mb": round(peak / MiB, 1),
        "server_rss_samples": len(samples),
        "server_alive": alive,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        r = result
        print(
            f"\nhostile mix against harness serve (idle timeout {args.idle_timeout:g} s), "
            f"{r.elapsed:.1f} s\n"
        )
        print(f"well-behaved answered in full   {r.answered_in_full}/{r.well_behaved}"
              f"   failures: {r.well_behaved_failures or 'none'}")
        print(f"slow senders cut off            {r.slow_cut_off}/{r.slow_senders}"
              f"   (longest lived {r.slow_cut_off_after_max:.1f} s, requests completed {r.slow_answers})")
        print(f"huge declared lengths refused   {r.huge_refused}/{r.huge_declarers}"
              f"   (worst {r.huge_refusal_max * 1000:.0f} ms; {r.huge_codes})")
        print(f"non-readers stalled by server   {r.non_readers_stalled}/{r.non_readers}"
              f"   ({r.non_reader_bytes_sent / MiB:.0f} MiB sent before the server stopped reading)")
        print(f"server RSS                      peak {peak / MiB:.1f} MB (baseline {baseline / MiB:.1f} MB)"
              f"   target < 200 MB")
        print(f"server alive after the mix      {alive}")
    ok = result.answered_in_full == result.well_behaved and peak < 200 * 1_000_000 and alive
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
