"""The Lua scripts of the fleet state, kept as ``.lua`` files under ``lua/``.

A script includes the shared library with a line ``--!include lib/job.lua``; the library's
``{{PER_ITEM}}`` becomes the per-item key suffixes of `framefleet.state.keys`, so retention
follows the layout. Scripts are loaded once per client and called by SHA (redis-py's
``Script``: EVALSHA, and SCRIPT LOAD again after a Redis restart forgot them).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from framefleet.state.keys import PER_ITEM

_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


@functools.cache
def source(name: str) -> str:
    """The full text of script ``name`` (``lua/{name}.lua``), its includes expanded.

    Raises:
        FileNotFoundError: no such script.
    """
    return _expand(_read(f"{name}.lua"))


def _read(path: str) -> str:
    text = resources.files("framefleet.state").joinpath("lua", path).read_text(encoding="utf-8")
    table = "{" + ", ".join(f"'{suffix}'" for suffix in PER_ITEM) + "}"
    return text.replace("{{PER_ITEM}}", table)


def _expand(text: str) -> str:
    return _INCLUDE.sub(lambda found: _read(found.group(1)), text)
