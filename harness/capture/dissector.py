"""The lpjson Wireshark dissector (``lpjson.lua``, next to this module) shipped with harness.

:func:`dissector_path` names the Lua file (``harness wireshark path``);
:func:`personal_plugins_dir` finds where Wireshark loads personal Lua plugins from
(``tshark -G folders`` when tshark is installed, else the documented default), and
:func:`install` copies the dissector there (``harness wireshark install``);
:func:`not_loaded` says why a tshark does not load it, if it does not.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

__all__ = [
    "DEFAULT_PLUGINS_DIR",
    "DISSECTOR_NAME",
    "dissector_path",
    "install",
    "not_loaded",
    "personal_plugins_dir",
]

log = logging.getLogger(__name__)

DISSECTOR_NAME = "lpjson.lua"
#: Where Wireshark on Linux and macOS loads personal Lua plugins from when tshark cannot be asked.
DEFAULT_PLUGINS_DIR = Path("~/.local/lib/wireshark/plugins")


def dissector_path() -> Path:
    """The absolute path of ``lpjson.lua``."""
    return Path(__file__).resolve().parent / DISSECTOR_NAME


def personal_plugins_dir(tshark: str | None = None, timeout: float = 10.0) -> tuple[Path, str]:
    """The personal Lua plugins folder and how it was found (``"tshark -G folders"`` or ``"default"``)."""
    tshark = tshark or shutil.which("tshark")
    if tshark:
        try:
            out = subprocess.run(
                [tshark, "-G", "folders"], capture_output=True, text=True, timeout=timeout, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("tshark -G folders failed (%s); using the default folder", exc)
        else:
            for line in out.splitlines():
                name, _, value = line.partition(":")
                if name.strip() == "Personal Lua Plugins" and value.strip():
                    return Path(value.strip()), "tshark -G folders"
    return DEFAULT_PLUGINS_DIR.expanduser(), "default"


def install(target_dir: Path | None = None) -> Path:
    """Copy the dissector into ``target_dir`` (default: the personal Lua plugins folder)."""
    directory = target_dir if target_dir is not None else personal_plugins_dir()[0]
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / DISSECTOR_NAME
    shutil.copyfile(dissector_path(), target)
    log.info("installed %s", target)
    return target


def _protocols(tshark: str, script: str | None, timeout: float) -> list[str] | None:
    """The filter names of the protocols ``tshark`` knows (with ``script`` loaded), or None."""
    args = [tshark, "-G", "protocols", *(["-X", f"lua_script:{script}"] if script else [])]  # -G first
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("%s -G protocols failed: %s", tshark, exc)
        return None
    return [fields[2] for line in out.splitlines() if len(fields := line.split("\t")) > 2]


@lru_cache(maxsize=8)
def not_loaded(tshark: str, script: str | None = None, timeout: float = 30.0) -> str | None:
    """Why ``tshark`` does not load the lpjson dissector, or None when it does.

    ``script``: the Lua file given with ``-X lua_script:`` (None: the plugins folders only,
    as Wireshark starts). tshark says nothing when it skips Lua scripts, so the protocols it
    knows are asked for (``-G protocols``), with a one-line script besides when lpjson is not
    among them. Newer Wireshark releases (4.4 here) run no Lua script at all as root unless
    the global ``init.lua`` of their plugins folder sets ``run_user_scripts_when_superuser``.
    """
    known = _protocols(tshark, script, timeout)
    if known is None:
        return f"{tshark} -G protocols failed"
    if "lpjson" in known:
        return None
    with tempfile.TemporaryDirectory(prefix="harness-lua-") as tmp:
        probe = Path(tmp) / "probe.lua"
        probe.write_text('Proto("harnessluaprobe", "harness: does this tshark run Lua scripts?")\n')
        runs_lua = "harnessluaprobe" in (_protocols(tshark, str(probe), timeout) or [])
    if not runs_lua:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            return (
                "tshark runs no Lua script as root (Wireshark 4.4 does not unless the global init.lua "
                "of its plugins folder, see tshark -G folders, sets run_user_scripts_when_superuser = "
                "true): run it as a normal user"
            )
        return "tshark runs no Lua script (is it built with Lua? see tshark -v)"
    if script is None:
        return "tshark does not find lpjson.lua in its Lua plugins folders (see tshark -G folders)"
    return f"tshark did not load {script}"
