"""Nothing executes from a file: a published checkpoint, a resume state or a recording whose pickle would run
code is refused (or read weights-only), and the code never runs."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import v1recon
from v1recon.errors import V1ReconError


class Marker:
    """Unpickling this creates the file `path`: the proof that loading ran code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _checkpoint_with_code(path: Path, marker: Path) -> Path:
    """A `.pth` laid out like a published checkpoint, with an object whose unpickling creates `marker`."""
    from test_models_checkpoint import published_payload

    payload = published_payload()
    payload["params"]["hook"] = Marker(marker)
    torch.save(payload, path)
    return path


def test_a_published_checkpoint_that_runs_code_is_refused(tmp_path):
    from v1recon.models import load_published_checkpoint

    marker = tmp_path / "ran-code"
    path = _checkpoint_with_code(tmp_path / "model-017-0.291974.pth", marker)
    with pytest.raises(V1ReconError, match=r"model-017-0\.291974\.pth: not a loadable weights-only"):
        load_published_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what an unsafe loader does
    assert marker.exists()  # so the file really carries code


def _mouse(n_trials=14, frames=60, n_neurons=5):
    from v1recon.training.clips import MouseTrials

    rng = np.random.default_rng(0)
    mouse = MouseTrials("m", n_neurons)
    for t in range(n_trials):
        mouse.trial_ids.append(t)
        mouse.folds.append(t % 7)
        mouse.videos.append(rng.uniform(0, 255, (frames, 36, 64)).astype(np.float16))
        mouse.behaviour.append(rng.normal(size=(4, frames)).astype(np.float32))
        mouse.responses.append(rng.gamma(1.0, 1.0, (n_neurons, frames)).astype(np.float32))
    return mouse


def test_a_resume_state_that_runs_code_is_refused(tmp_path):
    from v1recon.models import build_model
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import Trainer, state_path

    marker = tmp_path / "ran-code"
    stem = tmp_path / "models" / "model-0"
    stem.parent.mkdir()
    torch.save({"model": {}, "epoch": 1, "hook": Marker(marker)}, state_path(stem))
    model = build_model("fast3d", [5], pupil_shift=False)
    config = train_config("tiny", epochs=2, samples_per_epoch=4, batch_size=2)
    split = plan_splits(1, "seeds", seed=0)[0]
    with pytest.raises(V1ReconError, match=r"model-0\.state\.pt: cannot resume from this training state"):
        Trainer(model, [_mouse()], split, config, stem, "cpu", progress=False)
    assert not marker.exists()


def test_a_resume_state_holds_only_tensors_and_plain_containers(tmp_path, monkeypatch):
    """What the trainer saves loads weights-only, including both random generators."""
    from v1recon.models import build_model
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import Trainer, state_path

    monkeypatch.setattr(Trainer, "_init_from_data", lambda self: None)  # the RF start is not what is tested
    torch.manual_seed(0)
    stem = tmp_path / "model-0"
    model = build_model("fast3d", [5], pupil_shift=False)
    config = train_config("tiny", epochs=2, samples_per_epoch=4, batch_size=2)
    trainer = Trainer(model, [_mouse()], plan_splits(1, "seeds", seed=0)[0], config, stem, "cpu", progress=False)
    trainer.rng.random(3)
    trainer._save_state()
    state = torch.load(state_path(stem), weights_only=True)
    assert isinstance(state["torch_rng"], torch.Tensor)
    resumed = Trainer(build_model("fast3d", [5], pupil_shift=False), [_mouse()], trainer.split, config, stem, "cpu",
                      progress=False)  # fmt: skip
    assert resumed.rng.random() == trainer.rng.random()  # the numpy generator continues where it stopped


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            keywords = {k.arg: k.value for k in node.keywords}
            yield owner, node.func.attr, keywords, node.lineno


def test_no_loader_in_the_package_can_unpickle_code():
    """Every torch.load passes weights_only=True; no np.load allows pickles; nothing calls pickle.load(s)."""
    bad = []
    for path in sorted(Path(v1recon.__file__).parent.rglob("*.py")):
        for owner, name, keywords, line in _calls(ast.parse(path.read_text())):
            where = f"{path.name}:{line}"
            weights_only = keywords.get("weights_only")
            if (
                owner == "torch"
                and name == "load"
                and not (isinstance(weights_only, ast.Constant) and weights_only.value is True)
            ):
                bad.append(f"{where} torch.load without weights_only=True")
            pickles = keywords.get("allow_pickle")
            if owner in ("np", "numpy") and name == "load" and not (pickles is None or (
                isinstance(pickles, ast.Constant) and pickles.value is False
            )):  # fmt: skip
                bad.append(f"{where} np.load that may allow pickles")
            if owner == "pickle" and name in ("load", "loads"):
                bad.append(f"{where} pickle.{name}")
    assert not bad, bad
