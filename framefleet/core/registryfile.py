"""The user's registry file (``models.toml``) as ``framefleet models add`` writes it.

Entries are appended as TOML text, so the comments and order of a hand-kept file survive; an
entry that is replaced makes the file be written anew from its parsed content.

Example:
    >>> add_entry(Path("models.toml"), "my-yolo", {"task": "detection", ...})
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from framefleet.core.errors import ConfigError


def add_entry(
    path: Path, name: str, entry: dict[str, Any], replace: bool = False, header: str = ""
) -> None:
    """Add ``[models.name]`` to the registry file ``path`` (created, starting with ``header``,
    if missing).

    Raises:
        ConfigError: ``path`` is not valid TOML, or already has ``name`` and not ``replace``.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model registry {path} is not valid TOML: {exc}") from exc
    models = doc.get("models", {})
    if name in models and not replace:
        raise ConfigError(
            f"{path} already has a model called {name!r}; pass --replace to overwrite it, or "
            "--name to add this one under another name"
        )
    if name in models:
        models[name] = entry
        path.write_text(header + tomli_w.dumps(doc), encoding="utf-8")
        return
    block = tomli_w.dumps({"models": {name: entry}})
    path.parent.mkdir(parents=True, exist_ok=True)
    separator = "\n" if text and not text.endswith("\n\n") else ""
    path.write_text((text or header) + separator + block, encoding="utf-8")
