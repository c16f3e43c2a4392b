"""Output folders that v1recon owns: never an input, recognised by a marker, written by one process at a time.

Rules, checked before anything is written:
- An output folder may not be, contain or lie inside an input (a recording folder, the data folder, a run folder),
  whatever the flags. The one exception is the result sub-folders of a run (`RUN/reconstructions/...`,
  `RUN/analyses/...`, ...), where results of that run belong.
- A folder this tool writes carries `.v1recon-output.json` (what wrote it and the hash of its configuration). The
  same job with the same configuration resumes there; another configuration is refused unless `overwrite`, which
  then empties only a folder that carries the marker. A non-empty folder without the marker is never written to.
- One writer at a time: `.v1recon.lock` holds the writer's host and pid; a lock whose process is gone (killed) is
  taken over, a live one is refused with one sentence.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from v1recon.errors import V1ReconError

MARKER = ".v1recon-output.json"
LOCK = ".v1recon.lock"


@dataclass(frozen=True)
class Input:
    """A path a job reads; `results` names its sub-folders where outputs may go (a run's result folders)."""

    path: Path
    results: tuple[str, ...] = ()


def check_not_input(out: Path, inputs: Sequence[Input]) -> None:
    """Refuse an output folder that is, contains or lies inside an input (except a run's result sub-folders)."""
    target = out.resolve()
    for item in inputs:
        src = Path(item.path).resolve()
        if target == src or src.is_relative_to(target):
            raise V1ReconError(f"{out}: is or contains the input {item.path}; choose an output folder outside it.")
        if target.is_relative_to(src):
            inside = target.relative_to(src).parts
            if not (len(inside) >= 2 and inside[0] in item.results):  # RUN/reconstructions/<name> is fine
                where = ", ".join(f"{item.path}/{r}/NAME" for r in item.results)
                hint = f" (its results go to {where})" if item.results else ""
                raise V1ReconError(f"{out}: lies inside the input {item.path}{hint}; choose another output folder.")


def read_marker(out: Path) -> dict | None:
    """The marker of a folder this tool wrote, or None."""
    try:
        value = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def prepare_output(out: Path, kind: str, config_hash: str, inputs: Sequence[Input], overwrite: bool) -> bool:
    """Check `out` for a job of `kind` with configuration `config_hash` (see the module rules); returns True when it
    resumes a folder of the same job. Creates nothing; `claim_output` does, under the lock."""
    check_not_input(out, inputs)
    if out.exists() and not out.is_dir():
        raise V1ReconError(f"{out}: output path exists and is not a folder.")
    if not out.is_dir() or not any(p.name != LOCK for p in out.iterdir()):
        return False
    marker = read_marker(out)
    if marker is None:
        raise V1ReconError(
            f"{out}: holds files that v1recon did not write (no {MARKER}); choose an empty or new output folder."
        )
    if marker.get("kind") == kind and marker.get("config_hash") == config_hash:
        return True
    if not overwrite:
        raise V1ReconError(
            f"{out}: already holds {marker.get('kind', 'other')} results of another configuration; pass --overwrite "
            "to replace them or choose another output folder."
        )
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_lock(out: Path) -> Path:
    lock = out / LOCK
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            same_host = holder.get("host") == me["host"]
            if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
                lock.unlink(missing_ok=True)  # stale: its writer was killed
                continue
            raise V1ReconError(
                f"{out}: is being written by process {holder.get('pid', '?')} on {holder.get('host', '?')} since "
                f"{holder.get('since', '?')}; wait for it to finish, or delete {lock} if that process is gone."
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise V1ReconError(f"{lock}: could not take the lock; delete it if no other v1recon process writes {out}.")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the lock of `folder` (created if needed) for the duration; refuses while another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(folder)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_output(
    out: Path, kind: str, config: dict, config_hash: str, inputs: Sequence[Input], overwrite: bool
) -> Iterator[bool]:
    """Lock `out` for this process, (re)create it as a folder of job `kind`, yield whether it resumes.

    The checks of `prepare_output` are repeated under the lock, so that two writers cannot both pass them.
    """
    from v1recon.io import remove_temporaries, write_json

    prepare_output(out, kind, config_hash, inputs, overwrite)
    with locked(out):
        resumed = prepare_output(out, kind, config_hash, inputs, overwrite)
        if resumed:
            remove_temporaries(out)  # half-written files of a killed writer (the lock says none is alive)
        if not resumed:
            for p in out.iterdir():  # ours (checked above) or empty: replace what a previous job wrote
                if p.name != LOCK:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            write_json(out / MARKER, {"kind": kind, "config_hash": config_hash, "config": config})
        yield resumed
