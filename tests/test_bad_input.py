"""The bad-input matrix: the real CLI on corrupted copies of a tiny in-silico mouse and a tiny trained run.

Every case must end with a non-zero exit status and one sentence naming the file or option and the problem
(`error: ...`, or the CLI's usage error for an option outside its declared range), without a traceback, and leave
the whole work folder as it was: inputs byte-identical, no output and no temporary file written.
The commands run in this process (`v1recon.cli.main` with its arguments), which skips the seconds of a fresh
interpreter per case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import link_copy, read_only_folder, run_main, said, tree_digest, work_copy

TRAIN = ["--preset", "fast3d", "--epochs", "1", "--samples-per-epoch", "8", "--batch-size", "4", "--no-progress"]


# -- corruptions of the work copies (always replace a file: the copies are hard links to the shared run) --
def _replace_npy(path: Path, array) -> None:
    path.unlink()
    np.save(path, array)


def _edit_npy(path: Path, edit: Callable[[np.ndarray], np.ndarray | None]) -> None:
    array = np.load(path)
    result = edit(array)
    _replace_npy(path, array if result is None else result)


def _replace_bytes(path: Path, content: bytes) -> None:
    path.unlink()
    path.write_bytes(content)


def _file(c, kind: str, trial: int | str = "test") -> Path:
    trial_id = getattr(c, trial) if isinstance(trial, str) else trial
    return c.mouse_dir / "data" / kind / f"{trial_id}.npy"


def _set(index, value):
    def edit(a):
        a[index] = value

    return edit


def _fewer_neurons(c) -> None:
    """Every file of the mouse with one neuron less: a consistent recording that the run does not match."""
    for t in range(c.n_trials):
        _edit_npy(_file(c, "responses", t), lambda a: a[:-1])
    neurons = c.mouse_dir / "meta" / "neurons"
    for name in ("unit_ids.npy", "cell_motor_coordinates.npy"):
        _edit_npy(neurons / name, lambda a: a[:-1])


def _short_trial(c) -> None:
    """The test trial valid for 31 frames only (NaN after), one frame more than the reader's minimum context."""
    _edit_npy(_file(c, "videos"), _set((slice(None), slice(None), slice(31, None)), np.nan))
    _edit_npy(_file(c, "responses"), _set((slice(None), slice(31, None)), np.nan))


def _no_test_responses(c) -> None:
    for t in c.test_ids:
        _edit_npy(_file(c, "responses", t), lambda a: np.where(np.isnan(a), a, 0.0))


class _Marker:
    """Unpickling this creates a file: proof that loading ran code from the data."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _pickled_tiers(c) -> None:
    tiers = c.mouse_dir / "meta" / "trials" / "tiers.npy"
    names = np.load(tiers).tolist()
    names[0] = _Marker(c.work / "ran-code")
    tiers.unlink()
    np.save(tiers, np.array(names, dtype=object), allow_pickle=True)


def _tier(value: str):
    def corrupt(c):
        path = c.mouse_dir / "meta" / "trials" / "tiers.npy"
        tiers = np.load(path)
        tiers[c.test] = value
        _replace_npy(path, tiers.astype("<U16"))

    return corrupt


def _other_architecture(c) -> None:
    from v1recon.models import build_model, save_model

    save_model(c.work / "other", build_model("small", [c.n]), {})
    weights = c.run / "models" / "model-0.safetensors"
    _replace_bytes(weights, (c.work / "other.safetensors").read_bytes())
    for suffix in (".safetensors", ".json"):
        (c.work / f"other{suffix}").unlink()


def _results_in(folder: str):
    def corrupt(c):
        out = c.work / folder
        (out / c.mouse).mkdir(parents=True)
        (out / "summary.json").write_text('{"trials": []}\n')
        (out / c.mouse / "trial-3.npz").write_bytes(b"earlier results")

    return corrupt


def _untruncated(path_of: Callable, keep: float):
    def corrupt(c):
        path = path_of(c)
        content = path.read_bytes()
        _replace_bytes(path, content[: int(len(content) * keep)])

    return corrupt


# -- the commands ---------------------------------------------------------------------------------------------
def _command(kind: str, c) -> list:
    cpu = ["--device", "cpu"]
    if kind == "reconstruct":
        trial = ["--trials", f"{c.test},", "--iterations", "1", "--no-movies"]
        return ["reconstruct", c.run, "--data", c.data, "--out", c.work / "out", *trial, *cpu]
    if kind == "train":
        return ["train", c.data, "--out", c.work / "new-run", "--models", "1", *TRAIN, *cpu]
    if kind == "evaluate":
        return ["evaluate", c.run, "--data", c.data, "--tiers", "oracle", "--no-truth", "--no-progress", *cpu]
    if kind == "mask":
        return ["mask", c.run, "--data", c.data, "--iterations", "1", "--overwrite", *cpu]
    if kind == "analyse":
        return ["analyse", "population", c.run, "--data", c.data, "--trials", "1", "--iterations", "1", *cpu]
    if kind == "demo":
        return ["demo", c.work / "demo", "--sim-preset", "tiny", *cpu]
    if kind == "simulate":
        return ["simulate", c.work / "sim", "--preset", "tiny", "--mice", "1"]
    raise ValueError(kind)


@dataclass
class Case:
    id: str
    command: str
    expect: tuple[str, ...]  # in the message: the file or option, then the problem
    corrupt: Callable | None = None
    extra: Callable = field(default=lambda c: [])  # arguments after the command's own (the last value wins)
    usage: bool = False  # an option outside its declared range: the CLI's usage error names it


def _opt(*args):
    return lambda c: list(args)


RANDOM_BYTES = np.random.default_rng(0).bytes(4096)
NAN_FRAMES = "NaN or infinite value inside the valid frames"
NEGATIVE = "of the response magnitude is negative"
CASES = [
    Case("data folder missing", "reconstruct", ("nowhere", "folder not found"),
         extra=lambda c: ["--data", c.work / "nowhere"]),
    Case("data folder empty", "reconstruct", ("empty", "no recording found"),
         corrupt=lambda c: (c.work / "empty").mkdir(), extra=lambda c: ["--data", c.work / "empty"]),
    Case("truncated .npy", "reconstruct", ("responses/{test}.npy", "truncated .npy file"),
         corrupt=_untruncated(lambda c: _file(c, "responses"), 0.5)),
    Case("not a numpy file", "reconstruct", ("videos/{test}.npy", "not a .npy file (it does not start"),
         corrupt=lambda c: _replace_bytes(_file(c, "videos"), b"these are not the frames you are looking for")),
    Case("responses with 3 dimensions", "reconstruct", ("responses/{test}.npy", "expected (60, T) responses"),
         corrupt=lambda c: _edit_npy(_file(c, "responses"), lambda a: a[..., None])),
    Case("frames not 36 x 64", "reconstruct", ("videos/{test}.npy", "expected a (36, 64, T) video"),
         corrupt=lambda c: _edit_npy(_file(c, "videos"), lambda a: a[:32])),
    Case("neuron count differs between trials", "train", ("responses/{train}.npy", "to match unit_ids.npy"),
         corrupt=lambda c: _edit_npy(_file(c, "responses", "train"), lambda a: a[:-1])),
    Case("neuron count differs from the run (reconstruct)", "reconstruct", ("has 59 neurons", "predict 60"),
         corrupt=_fewer_neurons),
    Case("neuron count differs from the run (evaluate)", "evaluate", ("59 neurons", "60"), corrupt=_fewer_neurons),
    Case("NaN in the valid video frames", "reconstruct", ("videos/{test}.npy", NAN_FRAMES),
         corrupt=lambda c: _edit_npy(_file(c, "videos"), _set((5, 5, 40), np.nan))),
    Case("Inf in the valid responses", "reconstruct", ("responses/{test}.npy", NAN_FRAMES),
         corrupt=lambda c: _edit_npy(_file(c, "responses"), _set((3, 40), np.inf))),
    Case("NaN in the behaviour", "mask", ("behavior/", NAN_FRAMES),
         corrupt=lambda c: [_edit_npy(_file(c, "behavior", t), _set((0, 40), np.nan)) for t in range(c.n_trials)]),
    Case("negative responses (reconstruct)", "reconstruct", ("responses/{test}.npy", NEGATIVE),
         corrupt=lambda c: _edit_npy(_file(c, "responses"), lambda a: -a)),
    Case("negative responses (train)", "train", ("responses/{train}.npy", NEGATIVE),
         corrupt=lambda c: _edit_npy(_file(c, "responses", "train"), lambda a: -a)),
    Case("unknown tier in tiers.npy", "evaluate", ("tiers.npy", "unknown tier 'bogus'"), corrupt=_tier("bogus")),
    Case("unknown tier on the command line", "reconstruct", ("--tier 'bogus'", "unknown tier"),
         extra=_opt("--tier", "bogus")),
    Case("pickled tiers.npy", "reconstruct", ("tiers.npy", "pickled Python objects"), corrupt=_pickled_tiers),
    Case("trial shorter than the encoders' context", "reconstruct",
         ("trial {test}", "31 frames is shorter than one 32-frame window"), corrupt=_short_trial),
    Case("tier whose responses are all absent", "reconstruct", ("trial {test}", "has no recorded responses"),
         corrupt=_no_test_responses),
    Case("behaviour missing for a trial", "reconstruct", ("behavior/{test}.npy", "file not found"),
         corrupt=lambda c: _file(c, "behavior").unlink()),
    Case("checkpoint truncated", "reconstruct", ("model-0.safetensors", "not a readable safetensors file"),
         corrupt=_untruncated(lambda c: c.run / "models" / "model-0.safetensors", 0.6)),
    Case("checkpoint of random bytes", "evaluate", ("model-0.safetensors", "not a readable safetensors file"),
         corrupt=lambda c: _replace_bytes(c.run / "models" / "model-0.safetensors", RANDOM_BYTES)),
    Case("checkpoint of another architecture", "reconstruct",
         ("model-0.safetensors", "does not match the architecture"), corrupt=_other_architecture),
    Case("run.json not JSON", "reconstruct", ("run.json", "not valid JSON"),
         corrupt=lambda c: _replace_bytes(c.run / "run.json", b"{this is not json")),
    Case("run.json without its fields", "mask", ("run.json", "malformed run description (no 'data' field)"),
         corrupt=lambda c: _replace_bytes(c.run / "run.json", json.dumps({"format": "v1recon-run/1"}).encode())),
    Case("--iterations 0 (reconstruct)", "reconstruct", ("--iterations 0", "at least 1"),
         extra=_opt("--iterations", "0")),
    Case("--iterations 0 (mask)", "mask", ("--iterations 0", "at least 1"), extra=_opt("--iterations", "0")),
    Case("--batch-size 0", "reconstruct", ("--batch-size 0", "at least 1"), extra=_opt("--batch-size", "0")),
    Case("--trials naming an absent id", "reconstruct", ("trials [999]", "not among"), extra=_opt("--trials", "999,")),
    Case("--models 99", "reconstruct", ("model indices [99]", "do not exist"), extra=_opt("--models", "99")),
    Case("train --models 0", "train", ("'--models'",), extra=_opt("--models", "0"), usage=True),
    *[
        Case(f"--device bogus ({kind})", kind, ("--device 'bogus'", "not a device"), extra=_opt("--device", "bogus"))
        for kind in ("reconstruct", "train", "evaluate", "mask", "analyse", "demo", "simulate")
    ],
    *[
        Case(f"--device cuda without a GPU ({kind})", kind, ("--device 'cuda'", "no CUDA GPU"),
             extra=_opt("--device", "cuda"))
        for kind in ("reconstruct", "train")
    ],
    Case("output folder holds files of another tool", "reconstruct", ("out", "v1recon did not write"),
         corrupt=_results_in("out")),
    Case("train into a folder of another run", "train", ("run.json", "holds a different run"),
         corrupt=lambda c: link_copy(c.run, c.work / "new-run")),
    Case("train --out is a file", "train", ("new-run", "not a folder"),
         corrupt=lambda c: (c.work / "new-run").write_text("a file")),
]  # fmt: skip


def _everything(root: Path) -> tuple[set, dict]:
    """Every path under root (folders too, temporary ones included) and every file's content hash."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}, tree_digest(root)


def _check_refusal(case: Case, c, code: int, err: str) -> str:
    assert code != 0, err
    assert "Traceback" not in err
    if case.usage:
        assert code == 2 and "Invalid value for" in err and all(s in err for s in case.expect), err
        return err
    # progress bars may have started (the mask reads its trials as it trains); nothing else may be said
    lines = said(err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in case.expect:
        assert part.format(test=c.test, train=c.train) in lines[0], (part, lines[0])
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_in_one_sentence_and_changes_nothing(case, tiny_run, tmp_path, monkeypatch):
    if "cuda" in case.id and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("V1RECON_CACHE_DIR", "off")
    c = work_copy(tiny_run, tmp_path)
    if case.corrupt is not None:
        case.corrupt(c)
    before = _everything(tmp_path)
    code, _, err = run_main(*_command(case.command, c), *case.extra(c))
    _check_refusal(case, c, code, err)
    assert _everything(tmp_path) == before  # inputs byte-identical, no output, no temporary file
    assert not (tmp_path / "ran-code").exists()


def test_an_output_parent_on_a_read_only_file_system(tiny_run, tmp_path, monkeypatch):
    """reconstruct and train into a folder that cannot be written: one sentence naming it, the inputs intact."""
    monkeypatch.setenv("V1RECON_CACHE_DIR", "off")
    c = work_copy(tiny_run, tmp_path)
    with read_only_folder(tmp_path / "locked"):
        before = _everything(tmp_path)
        for command, out in (("reconstruct", "out"), ("train", "new-run")):
            args = [str(a).replace(str(tmp_path / out), str(tmp_path / "locked" / out)) for a in _command(command, c)]
            code, _, err = run_main(*args)
            case = Case("read-only", command, ("locked",))
            line = _check_refusal(case, c, code, err)
            assert "read-only" in line.lower() or "permission denied" in line.lower(), line
        assert _everything(tmp_path) == before


def test_small_negative_noise_is_clipped_with_one_warning(tiny_run, tmp_path, monkeypatch, capsys):
    """Deconvolution noise (a few small negative values) is set to 0, said once per recording; the rest stays."""
    from v1recon.data import Recording

    monkeypatch.setenv("V1RECON_CACHE_DIR", "off")
    c = work_copy(tiny_run, tmp_path)
    for t in c.test_ids[:2]:
        _edit_npy(_file(c, "responses", t), _set((slice(0, 3), slice(10, 12)), -1e-3))
    rec = Recording(c.mouse_dir)
    first, second = (rec.trial(t).responses for t in c.test_ids[:2])
    raw = np.load(_file(c, "responses"))[:, : first.shape[1]]
    assert first.min() == 0 and np.array_equal(first, np.maximum(raw, 0))
    assert second.min() >= 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and f"responses/{c.test_ids[0]}.npy" in err[0]
    assert "6 negative response values" in err[0]


def test_pickled_metadata_never_runs(tiny_run, tmp_path):
    """The reader refuses object arrays before loading them; the crafted pickle would create a file."""
    from v1recon.data import Recording
    from v1recon.errors import V1ReconError

    c = work_copy(tiny_run, tmp_path)
    _pickled_tiers(c)
    with pytest.raises(V1ReconError, match="pickled Python objects"):
        Recording(c.mouse_dir)
    assert not (tmp_path / "ran-code").exists()
    np.load(c.mouse_dir / "meta" / "trials" / "tiers.npy", allow_pickle=True)  # what the reader used to do
    assert (tmp_path / "ran-code").exists()  # the crafted file does run code when unpickled
