"""The lpjson Wireshark dissector (``lpjson.lua``, next to this module) shipped with harness.

:func:`dissector_path` names the Lua file (``harness wireshark path``);
:func:`personal_plugins_dir` finds where Wireshark loads personal Lua plugins from
(``tshark -G folders`` when tshark is installed, else the documented default), and
:func:`install` copies the dissector there (``harness wireshark install``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

__all__ = ["DEFAULT_PLUGINS_DIR", "DISSECTOR_NAME", "dissector_path", "install", "personal_plugins_dir"]

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
