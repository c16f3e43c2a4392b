"""Executors: who runs a job's tasks. `local` runs them one after another in this process; `ray` ships them to the
workers of a Ray cluster (a local one started for the job, or an existing one at `--address`), as many at once as
the cluster's CPUs and GPUs allow, retrying a task whose worker died. A local cluster gets every core of this machine,
or the number in the environment variable V1RECON_RAY_CPUS."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from v1recon.errors import V1ReconError
from v1recon.jobs.tasks import Job, Task, execute

LOCAL_CPUS_VARIABLE = "V1RECON_RAY_CPUS"  # CPUs of a local Ray cluster (default: every core of this machine)
MAX_RETRIES = 3  # re-runs of a task whose worker process died (Ray's max_retries; exceptions are not retried)


def _bar(job: Job, todo: list[Task], progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=len(todo), desc=job.title, unit="task", disable=not progress)


def _finished(task: Task, result, seconds: float, log, on_done) -> None:
    if log is not None:
        log(f"{task.name}: done in {seconds:.1f} s")
    if on_done is not None:
        on_done(task.name, result)


def run_local(
    job: Job, todo: list[Task], address=None, progress=True, log=None, on_done=None, workers: int = 1
) -> dict[str, Any]:
    """In this process, in dependency order (`address` is not used); with `workers` > 1 in that many local
    processes, each task as soon as the tasks it needs are done."""
    if workers > 1:
        return _run_processes(job, todo, workers, progress, log, on_done)
    results = {}
    with _bar(job, todo, progress) as bar:
        for task in todo:
            bar.set_postfix_str(task.name)
            results[task.name], seconds = execute(task, str(job.stamp_path(task)))
            _finished(task, results[task.name], seconds, log, on_done)
            bar.update(1)
    return results


def _schedule(job: Job, todo: list[Task], submit, wait_any, collect, progress, log, on_done) -> dict[str, Any]:
    """The one dependency scheduler of the parallel executors: each task is submitted once the tasks it needs are
    done, and collected as it finishes. submit(task) -> handle; wait_any(handles) -> the finished ones;
    collect(handle, task) -> (result, seconds), raising the task's error."""
    waiting = {t.name: t for t in todo}
    finished = {t.name for t in job.tasks} - set(waiting)
    running: dict[Any, Task] = {}
    results: dict[str, Any] = {}
    with _bar(job, todo, progress) as bar:
        while waiting or running:
            for task in [t for t in waiting.values() if all(n in finished for n in t.needs)]:
                running[submit(task)] = waiting.pop(task.name)
            bar.set_postfix_str(f"running {len(running)}, waiting {len(waiting)}")
            for handle in wait_any(list(running)):
                task = running.pop(handle)
                results[task.name], seconds = collect(handle, task)
                finished.add(task.name)
                _finished(task, results[task.name], seconds, log, on_done)
                bar.update(1)
    return results


def _run_processes(job: Job, todo: list[Task], workers: int, progress, log, on_done) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    def finished(futures):
        return wait(futures, return_when=FIRST_COMPLETED)[0]

    # spawn, not fork: a forked child of a process that already ran torch can hang in its thread pool
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:

        def submit(task: Task):
            return pool.submit(execute, task, str(job.stamp_path(task)))

        return _schedule(job, todo, submit, finished, lambda future, _: future.result(), progress, log, on_done)


def _ray():
    try:
        import ray
    except ImportError:
        raise V1ReconError(
            "--executor ray needs Ray, which is not installed; install it with pip install -e '.[ray]'."
        ) from None
    return ray


def _unwrap(err: Exception) -> Exception:
    """The exception a task raised, out of Ray's wrapper."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, Exception) else err


def run_ray(
    job: Job,
    todo: list[Task],
    address: str | None = None,
    progress=True,
    log: Callable | None = None,
    on_done: Callable | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """On a Ray cluster: `address` None starts a local one for this job (stopped at the end), "auto" or HOST:PORT
    joins a running one. Tasks start as soon as the tasks they need are done (`workers` is not used: the cluster's
    CPUs and GPUs decide how many run at once)."""
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
        if address is None:
            options["num_cpus"] = int(os.environ.get(LOCAL_CPUS_VARIABLE) or os.cpu_count() or 1)
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            raise V1ReconError(f"--address {address}: no Ray cluster answers there ({err}).") from None
    remote = ray.remote(execute)  # options per call: an options() wrapper has no options() of its own

    def submit(task: Task):
        options = dict(num_cpus=task.cpus, num_gpus=task.gpus, name=task.name, max_retries=MAX_RETRIES)
        return remote.options(**options).remote(task, str(job.stamp_path(task)))

    def collect(ref, task: Task):
        try:
            return ray.get(ref)
        except Exception as err:  # the task's own exception, or its worker lost MAX_RETRIES times
            cause = _unwrap(err)
            if isinstance(cause, V1ReconError):
                raise V1ReconError(str(cause)) from None
            raise V1ReconError(f"task {task.name} failed on the Ray cluster: {cause}") from cause

    try:
        return _schedule(
            job, todo, submit, lambda refs: ray.wait(refs, num_returns=1)[0], collect, progress, log, on_done
        )
    finally:
        if started_here:
            ray.shutdown()


EXECUTORS = {"local": run_local, "ray": run_ray}
