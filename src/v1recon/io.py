"""Atomic file writing and the JSON sidecar that accompanies every result file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from v1recon import __version__
from v1recon.errors import OutputError, V1ReconError

# file-system errors on an output, with the reason a user reads; the CLI turns them into one sentence
WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device (free some space and run the command again)",
    errno.EDQUOT: "the disk quota is exceeded (free some space and run the command again)",
    errno.EROFS: "the file system is read-only (choose another output folder)",
    errno.EACCES: "permission denied (choose an output folder you can write to)",
    errno.EPERM: "operation not permitted (choose an output folder you can write to)",
    errno.EFBIG: "the file is too large for this file system",
}
_PENDING: list[tuple[Path, Path]] = []  # (temporary path, final path) of the atomic writes in progress


def shown_path(path: str | os.PathLike) -> Path:
    """The final name of a path inside a temporary output (what the user asked for), else the path itself."""
    path = Path(path)
    for tmp, final in reversed(_PENDING):
        if path == tmp or tmp in path.parents:
            path = final / path.relative_to(tmp)
    return path


def write_error(err: OSError, path: Path, tmp: Path | None) -> OutputError | None:
    """One sentence for a file-system error while writing `path` through the temporary folder `tmp`, or None
    when `err` is no such error or concerns another file (an input read inside the block)."""
    reason = WRITE_ERRORS.get(err.errno)
    name = Path(err.filename) if err.filename else path
    if reason is None:
        return None
    if name.parent == path.parent and name != path and not (tmp is not None and tmp in name.parents):
        name = path  # the temporary folder beside it
    elif not (name == path or name in path.parents or (tmp is not None and tmp in name.parents)):
        return None
    return OutputError(f"{shown_path(name)}: cannot write, {reason}.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and for folders (the block creates whatever it likes at the yielded path). A folder already
    at `path` is moved aside first and put back if the rename fails, so a failure leaves the previous state.
    A full disk, a read-only file system or a permission error becomes one V1ReconError naming the final path.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        target = tmp / path.name
        _PENDING.append((target, path))
        yield target
        if path.is_dir() and not path.is_symlink():
            os.replace(path, tmp / f"{path.name}.replaced")
            try:
                os.replace(target, path)
            except BaseException:
                os.replace(tmp / f"{path.name}.replaced", path)
                raise
        else:
            os.replace(target, path)
    except OSError as err:
        converted = write_error(err, path, tmp)
        if converted is None:
            raise
        raise converted from err
    finally:
        if tmp is not None:
            _PENDING.remove((target, path))
            shutil.rmtree(tmp, ignore_errors=True)


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete what `atomic_path` left under `folder` when its process was killed (`.<name>.<random>.tmp` folders);
    the number deleted. Call it only while holding the folder's lock: a live writer's temporaries look the same.
    A `.replaced` result inside one is put back first (killed between moving it aside and the rename)."""
    found = sorted(p for p in Path(folder).rglob(".*.tmp") if p.is_dir() and not p.is_symlink())
    for tmp in found:
        final = tmp.parent / tmp.name[1:].rsplit(".", 2)[0]
        replaced = tmp / f"{final.name}.replaced"
        if replaced.exists() and not final.exists():
            os.replace(replaced, final)
        shutil.rmtree(tmp, ignore_errors=True)
    return len(found)


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write a compressed .npz atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write JSON atomically (NaN/inf become null, numpy values become plain numbers)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise V1ReconError(f"{path}: file not found.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise V1ReconError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}).") from err


def sidecar_path(result: str | os.PathLike) -> Path:
    """`recon.npz` -> `recon.json`; every result file has one."""
    result = Path(result)
    return result.with_suffix(".json")


def provenance() -> dict[str, Any]:
    """Package and library versions and the hardware, for sidecars and reports."""
    import torch

    info: dict[str, Any] = {
        "v1recon": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return info


def write_sidecar(result: str | os.PathLike, **sections: Any) -> Path:
    """Write the JSON sidecar of a result file: config, seed, data/model identities, metrics, provenance."""
    path = sidecar_path(result)
    write_json(path, {"result": Path(result).name, **sections, "provenance": provenance()})
    return path


def file_digest(path: str | os.PathLike, nbytes: int = 1 << 20) -> str:
    """Short identity of a file: sha256 of its size and first `nbytes` bytes."""
    path = Path(path)
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(nbytes))
    return h.hexdigest()[:16]


def ensure_empty_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to write into a folder that already holds results unless `overwrite` is set."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise V1ReconError(f"{path}: output path exists and is not a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise V1ReconError(f"{path}: output folder already holds results; pass --overwrite to replace them.")
    path.mkdir(parents=True, exist_ok=True)
    return path
