"""The task model under every command: a job is a list of tasks; an executor runs the tasks that are not done.

A task names the files it writes (`outputs`), the configuration that determines them (`config`, hashed), the tasks
whose files it reads (`needs`) and a plain module-level function that writes the files atomically and returns a
small JSON-able result (`fn(**kwargs)`; picklable, so that Ray can ship it). After the function returns, a stamp
`<stamps>/<task>.json` records the configuration hash and the result. A task is done when its stamp holds the same
hash and all its outputs exist: a job that was interrupted (Ctrl-C, SIGKILL, a lost node) is resumed by running the
same command, which runs only the tasks that are not done. Stamps are written last and every file atomically, so
no task ever reads a partial file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v1recon.errors import V1ReconError

STAMPS_DIR = ".tasks"


def config_hash(config: Any) -> str:
    """A short, stable hash of plain data (dict keys sorted; numpy values and paths as JSON)."""
    from v1recon.io import _jsonable

    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """One unit of work of a job (see the module docstring)."""

    name: str  # unique within its job, e.g. "insilico-s0-m0/batch-0/model-1"
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    outputs: tuple[Path, ...] = ()
    config: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    cpus: float = 1.0  # what the task asks of an executor's worker
    gpus: float = 0.0

    @property
    def hash(self) -> str:
        return config_hash({"task": self.name, "config": self.config})


@dataclass
class Job:
    """Tasks and the folder of their stamps; `title` labels the progress bar."""

    title: str
    stamps: Path
    tasks: list[Task]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.title}: task names must be unique")
        known = set(names)
        for t in self.tasks:
            missing = [n for n in t.needs if n not in known]
            if missing:
                raise ValueError(f"{self.title}: task {t.name} needs unknown tasks {missing}")

    def stamp_path(self, task: Task) -> Path:
        return self.stamps / f"{task.name.replace('/', '__')}.json"

    def stamp(self, task: Task) -> dict | None:
        """The stamp of a task that ran with its current configuration, else None."""
        try:
            stamp = json.loads(self.stamp_path(task).read_text())
        except (OSError, ValueError):
            return None
        return stamp if isinstance(stamp, dict) and stamp.get("hash") == task.hash else None

    def done(self, task: Task) -> dict | None:
        """The stamp of a finished task whose outputs exist (its result under "result"), or None."""
        stamp = self.stamp(task)
        return stamp if stamp is not None and all(Path(p).exists() for p in task.outputs) else None

    def finished(self) -> dict[str, dict]:
        """Stamps ({} where none) of every task that need not run: done, or read only by tasks that need not run
        (intermediate files may be removed once consumed)."""
        out: dict[str, dict] = {}
        for task in reversed(self.order()):
            readers = [t.name for t in self.tasks if task.name in t.needs]
            if readers and all(r in out for r in readers):
                out[task.name] = self.stamp(task) or {}
            elif (stamp := self.done(task)) is not None:
                out[task.name] = stamp
        return out

    def order(self) -> list[Task]:
        """Tasks with every task after the ones it needs (the listed order where it allows)."""
        by_name = {t.name: t for t in self.tasks}
        placed: dict[str, None] = {}

        def place(t: Task, path: tuple[str, ...] = ()) -> None:
            if t.name in placed:
                return
            if t.name in path:
                raise ValueError(f"{self.title}: tasks {' -> '.join((*path, t.name))} form a cycle")
            for n in t.needs:
                place(by_name[n], (*path, t.name))
            placed[t.name] = None

        for t in self.tasks:
            place(t)
        return [by_name[n] for n in placed]


def execute(task: Task, stamp: str) -> tuple[Any, float]:
    """Run one task and write its stamp; what a worker runs (local or on Ray). Returns (result, seconds)."""
    from v1recon.io import write_json

    start = time.perf_counter()
    result = task.fn(**task.kwargs)
    seconds = round(time.perf_counter() - start, 2)
    write_json(stamp, {"task": task.name, "hash": task.hash, "result": result, "seconds": seconds})
    return result, seconds


def run_job(
    job: Job,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_done: Callable[[str, Any], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run the tasks of `job` that are not done with `executor` ("local" or "ray"); returns every task's result
    (from its stamp for the tasks already done), by task name. `on_done(name, result)` follows each task run;
    `workers` > 1 runs a local job's independent tasks in that many processes."""
    from v1recon.jobs.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise V1ReconError(f"--executor {executor!r}: choose {' or '.join(EXECUTORS)}.")
    finished = job.finished()
    results = {name: stamp.get("result") for name, stamp in finished.items()}
    todo = [task for task in job.order() if task.name not in finished]
    if todo:
        job.stamps.mkdir(parents=True, exist_ok=True)
        run = EXECUTORS[executor]
        results.update(run(job, todo, address=address, progress=progress, log=log, on_done=on_done, workers=workers))
    elif log is not None:
        log(f"{job.title}: all {len(job.tasks)} tasks already done")
    return results


def results_of(results: dict[str, Any], names: Sequence[str]) -> list[Any]:
    """The results of the named tasks, in that order."""
    return [results[n] for n in names]
