"""The task model and output folders: order, resume from stamps, consumed intermediates, inputs never written, one
writer at a time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v1recon.errors import V1ReconError
from v1recon.jobs.outputs import LOCK, MARKER, Input, check_not_input, claim_output, locked, prepare_output
from v1recon.jobs.tasks import Job, Task, config_hash, run_job

CALLS = []


def write_number(path: str, value: int) -> int:
    """A task: write `value` into `path`; record the call."""
    CALLS.append(Path(path).name)
    Path(path).write_text(str(value))
    return value


def add_files(out: str, a: str, b: str) -> int:
    """A task: write the sum of the numbers in files a and b into `out`."""
    return write_number(out, int(Path(a).read_text()) + int(Path(b).read_text()))


def _job(root: Path, factor: int = 1) -> Job:
    """sum (listed first) needs a and b."""
    a, b, c = (str(root / n) for n in ("a", "b", "c"))
    return Job("test", root / ".tasks", [
        Task("sum", add_files, {"out": c, "a": a, "b": b}, (Path(c),), {"f": factor}, needs=("a", "b")),
        Task("a", write_number, {"path": a, "value": 2 * factor}, (Path(a),), {"f": factor}),
        Task("b", write_number, {"path": b, "value": 3 * factor}, (Path(b),), {"f": factor}),
    ])  # fmt: skip


def test_tasks_run_after_what_they_need_and_resume_from_stamps(tmp_path):
    CALLS.clear()
    results = run_job(_job(tmp_path), progress=False)
    assert results == {"a": 2, "b": 3, "sum": 5}
    assert CALLS == ["a", "b", "c"]  # dependency order, listed order otherwise
    stamp = json.loads((tmp_path / ".tasks" / "sum.json").read_text())
    assert stamp["result"] == 5 and stamp["hash"] == _job(tmp_path).tasks[0].hash
    CALLS.clear()
    assert run_job(_job(tmp_path), progress=False) == results and CALLS == []  # all done: nothing runs
    (tmp_path / "b").unlink()  # a lost output: that task runs again, and nothing else (its reader is done)
    assert run_job(_job(tmp_path), progress=False)["sum"] == 5 and CALLS == []
    (tmp_path / "c").unlink()
    run_job(_job(tmp_path), progress=False)
    assert CALLS == ["b", "c"]
    CALLS.clear()
    assert run_job(_job(tmp_path, factor=2), progress=False)["sum"] == 10  # another configuration: all again
    assert CALLS == ["a", "b", "c"]


def test_local_processes_run_each_task_after_what_it_needs(tmp_path):
    """workers=2: the independent tasks run in two processes, the sum after both, with the serial results."""
    results = run_job(_job(tmp_path), progress=False, workers=2)
    assert results == {"a": 2, "b": 3, "sum": 5} and (tmp_path / "c").read_text() == "5"
    assert all((tmp_path / ".tasks" / f"{n}.json").is_file() for n in ("a", "b", "sum"))
    CALLS.clear()
    assert run_job(_job(tmp_path), progress=False, workers=2) == results and CALLS == []


def test_a_task_without_a_stamp_runs_again_even_if_its_file_exists(tmp_path):
    CALLS.clear()
    run_job(_job(tmp_path), progress=False)
    (tmp_path / ".tasks" / "a.json").unlink()  # killed after writing its file, before its stamp
    (tmp_path / "c").unlink()
    CALLS.clear()
    run_job(_job(tmp_path), progress=False)
    assert CALLS == ["a", "c"]


def test_job_checks_names_and_cycles(tmp_path):
    t = Task("x", write_number, {}, (), {}, needs=("y",))
    with pytest.raises(ValueError, match="unknown"):
        Job("j", tmp_path, [t])
    with pytest.raises(ValueError, match="cycle"):
        Job("j", tmp_path, [t, Task("y", write_number, {}, (), {}, needs=("x",))]).order()
    with pytest.raises(V1ReconError, match="--executor"):
        run_job(Job("j", tmp_path, []), executor="slurm")


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_output_may_not_be_contain_or_lie_inside_an_input(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir(), run.mkdir()
    inputs = [Input(data), Input(run, ("reconstructions",))]
    contains = [(data, "is or contains"), (tmp_path, "is or contains"), (run, "is or contains")]
    inside = [(data / "x", "inside"), (run / "models", "inside"), (run / "reconstructions", "inside")]
    for bad, word in contains + inside:
        with pytest.raises(V1ReconError, match=word):
            check_not_input(bad, inputs)
    check_not_input(run / "reconstructions" / "final_test", inputs)
    check_not_input(tmp_path / "elsewhere", inputs)


def test_marker_resume_refusal_and_overwrite(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, "kind", {"x": 1}, "h1", [], overwrite=False) as resumed:
        assert not resumed and (out / MARKER).is_file() and (out / LOCK).is_file()
        (out / "result").write_text("old")
    assert not (out / LOCK).exists()
    assert prepare_output(out, "kind", "h1", [], overwrite=False) is True  # same job: resume
    with pytest.raises(V1ReconError, match="another configuration"):
        prepare_output(out, "kind", "h2", [], overwrite=False)
    assert (out / "result").read_text() == "old"
    with claim_output(out, "kind", {"x": 2}, "h2", [], overwrite=True) as resumed:
        assert not resumed and not (out / "result").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # never a folder this tool did not write
        with pytest.raises(V1ReconError, match="did not write"):
            prepare_output(foreign, "kind", "h", [], overwrite=overwrite)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(tmp_path):
    folder = tmp_path / "f"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder.mkdir()
        import socket

        lock = {"host": socket.gethostname(), "pid": holder.pid, "since": "now"}
        (folder / LOCK).write_text(json.dumps(lock))
        with pytest.raises(V1ReconError, match=f"process {holder.pid}"):
            with locked(folder):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locked(folder):  # its holder is gone: taken over
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK).exists()


def test_temporaries_of_a_killed_writer_are_removed_and_a_moved_aside_result_put_back(tmp_path):
    from v1recon.io import remove_temporaries

    half = tmp_path / "m" / ".trial-3.npz.abc123.tmp"
    half.mkdir(parents=True)
    (half / "trial-3.npz").write_bytes(b"half")
    aside = tmp_path / ".run.xyz_9.tmp"
    (aside / "run.replaced").mkdir(parents=True)
    (aside / "run.replaced" / "kept.txt").write_text("old")
    (tmp_path / "m" / "done.npz").write_bytes(b"whole")
    assert remove_temporaries(tmp_path) == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "m", "m/done.npz", "run", "run/kept.txt"
    ]  # fmt: skip
