"""``harness wireshark``: where the lpjson dissector is, and installing it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.capture.dissector import dissector_path, install, not_loaded, personal_plugins_dir
from harness.capture.tshark import find_tshark


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "wireshark",
        help="the lpjson Wireshark dissector: print its path or install it",
        description="The lpjson Wireshark dissector (Lua, Wireshark 4.0+).",
    )
    sub = parser.add_subparsers(dest="wireshark_command", metavar="SUBCOMMAND", required=True)
    path_parser = sub.add_parser(
        "path",
        help="print the dissector's path",
        description="Print the path of lpjson.lua, "
        "e.g. for `wireshark -X lua_script:$(harness wireshark path)`.",
    )
    path_parser.set_defaults(func=run_path)
    install_parser = sub.add_parser(
        "install",
        help="copy the dissector into your personal Lua plugins folder",
        description="Copy lpjson.lua into the personal Lua plugins folder (found with `tshark -G folders` "
        "when tshark is installed, else ~/.local/lib/wireshark/plugins), where Wireshark and tshark "
        "load it on start.",
    )
    install_parser.add_argument("--dir", type=Path, help="install into this folder instead")
    install_parser.set_defaults(func=run_install)


def run_path(args: argparse.Namespace) -> int:
    print(dissector_path())
    return 0


def run_install(args: argparse.Namespace) -> int:
    tshark = find_tshark()
    if args.dir is not None:
        directory, how = args.dir, "--dir"
    else:
        directory, how = personal_plugins_dir(tshark)
    try:
        target = install(directory)
    except OSError as exc:
        print(f"harness wireshark install: cannot write {directory}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"installed {target} (personal Lua plugins folder, from {how})")
    if args.dir is not None or tshark is None:  # no tshark to ask whether it loads the folder
        print("restart Wireshark, or reload Lua plugins (Analyze > Reload Lua Plugins), to load it")
        return 0
    why = not_loaded(tshark)
    if why is None:
        print("tshark loads it; restart Wireshark, or reload Lua plugins (Analyze > Reload Lua Plugins)")
    else:
        print(f"harness wireshark install: warning: {why}", file=sys.stderr)
    return 0
