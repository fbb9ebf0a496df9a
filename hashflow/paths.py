"""Where hashflow finds its data: one setting, ``HASHFLOW_DATA``, with a sensible default."""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """The data folder (``coco/``, ``flow/``), or None when there is none.

    ``$HASHFLOW_DATA`` wins when set; otherwise ``../shared/data`` beside the project checkout
    (this repository's development setup) or beside the current directory.
    """
    env = os.environ.get("HASHFLOW_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for base in (_PROJECT_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def data_path(*parts: str) -> Path | None:
    """``data_root() / parts`` when it exists, else None (callers skip or fall back)."""
    root = data_root()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None
