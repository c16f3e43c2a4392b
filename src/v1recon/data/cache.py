"""Cache of trial tables, so that re-opening a large recording skips the scan of its files.

A table is keyed by the recording's resolved path and a signature of the size and modification time of every
file the scan reads, so any change to the recording invalidates it. Tables live in memory for the process and,
when the scan took at least `MIN_SCAN_SECONDS`, as small JSON files in $V1RECON_CACHE_DIR (default
~/.cache/v1recon/trial-tables; set it to "off" to disable). A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from v1recon.io import write_json

CACHE_ENV = "V1RECON_CACHE_DIR"
MIN_SCAN_SECONDS = 0.5
_VERSION = 1
_memory: dict[tuple[str, str], list[list]] = {}


def cache_dir() -> Path | None:
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path.home() / ".cache" / "v1recon" / "trial-tables"
    return None if value.strip().lower() in ("", "off", "0", "none") else Path(value)


def signature(files: list[Path]) -> str | None:
    """Hash of (name, size, mtime) of the files; None when one is missing (the scan then reports it)."""
    h = hashlib.sha256(str(_VERSION).encode())
    for path in files:
        try:
            st = path.stat()
        except OSError:
            return None
        h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _file(root: Path) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / (hashlib.sha256(str(root).encode()).hexdigest()[:24] + ".json")


def load(root: Path, sig: str) -> list[list] | None:
    """Rows of a cached table, or None."""
    root = root.resolve()
    if (str(root), sig) in _memory:
        return _memory[(str(root), sig)]
    path = _file(root)
    try:
        payload = json.loads(path.read_text()) if path is not None and path.is_file() else None
    except (OSError, ValueError):
        return None
    if not payload or payload.get("signature") != sig or payload.get("root") != str(root):
        return None
    _memory[(str(root), sig)] = payload["rows"]
    return payload["rows"]


def store(root: Path, sig: str, rows: list[list], persist: bool) -> None:
    root = root.resolve()
    _memory[(str(root), sig)] = rows
    path = _file(root)
    if not persist or path is None:
        return
    try:
        write_json(path, {"root": str(root), "signature": sig, "rows": rows})
    except OSError:
        pass  # a read-only home only costs a re-scan next time
