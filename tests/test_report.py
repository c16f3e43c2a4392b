"""The run report: built from a tiny synthetic run folder (no training), robust to missing stages."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from v1recon.data import Trial, write_recording
from v1recon.errors import V1ReconError
from v1recon.io import save_npz, write_json
from v1recon.report import comparison_markdown, comparison_values, write_report
from v1recon.report.published import NOT_MEASURED, PUBLISHED, PUBLISHED_BY_KEY
from v1recon.training.splits import plan_splits

T, H, W, N = 45, 36, 64, 12
MOUSE = "mouse-a"


def _movie(rng: np.random.Generator) -> np.ndarray:
    """A smooth moving blob, grey levels 0..255, (T, 36, 64)."""
    yy, xx = np.mgrid[:H, :W]
    cx = 10 + 40 * np.linspace(0, 1, T) + rng.uniform(-3, 3)
    return np.stack([127.5 + 100 * np.exp(-((xx - c) ** 2 + (yy - 18) ** 2) / 60.0) for c in cx]).astype(np.float32)


def _write_data(root: Path, rng: np.random.Generator) -> Path:
    trials = []
    tiers = ["train", "train", "oracle", "oracle", "final_test", "final_test"]
    for i, tier in enumerate(tiers):
        responses = None if tier == "final_test" else rng.gamma(1.0, 1.0, (N, T)).astype(np.float32)
        behaviour = np.stack([rng.normal(5, 1, T), rng.gamma(2, 2, T), rng.normal(0, 1, T), rng.normal(0, 1, T)])
        trials.append(Trial(i, tier, _movie(rng), responses, behaviour.astype(np.float32)))
    path = write_recording(root / MOUSE, trials, np.arange(N), rng.normal(0, 100, (N, 3)))
    # What the simulator leaves beside the mouse folders.
    import imageio.v3 as iio

    iio.imwrite(root / f"{MOUSE}.png", trials[0].video[0].astype(np.uint8))
    write_json(root / f"{MOUSE}.truth.json", {"calibration": {"single_trial_correlation_median": 0.78}})
    write_json(root / "simulation.json", {"preset": "tiny", "seed": 0, "seconds": 24.8, "mice": [{"seconds": 11.6}]})
    return path


ALL_STAGES = ("models", "evaluation", "masks", "reconstructions", "analyses")


def make_run(tmp_path: Path, stages: tuple[str, ...] = ALL_STAGES) -> Path:
    """A run folder shaped like the real one, with only the given stages present."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    mouse_path = _write_data(data, rng)
    run = tmp_path / "run"
    run.mkdir()
    write_json(
        run / "run.json",
        {
            "format": "v1recon-run/1",
            "data": str(data),
            "mice": [{"name": MOUSE, "path": str(mouse_path), "n_neurons": N, "n_trials": 6, "identity": "abc"}],
            "preset": "tiny",
            "ensemble": "folds",
            "seed": 0,
            "n_folds": 7,
            "test_fold": 0,
            "splits": [s.to_dict() for s in plan_splits(2, "folds", 0, 7, 0)],
            "train_config": {"epochs": 3, "batch_size": 4},
            "models": [{"index": k, "complete": True, "epochs": 3, "val_corr": 0.2} for k in range(2)],
            "timings": {"load_seconds": 1.5, "total_seconds": 42.0},
            "provenance": {"v1recon": "0.1.0", "python": "3.11", "torch": "2.x", "platform": "Linux", "cpu_count": 2},
        },
    )
    if "models" in stages:
        (run / "models").mkdir()
        for k in range(2):
            extra = {
                "preset": "tiny",
                "seed": 100 + k,
                "epoch": 3,
                "planned_epochs": 3,
                "val_corr": 0.2 + 0.01 * k,
                "train_seconds": 20.0,
                "complete": True,
                "split": {"val_fold": k + 1},
            }
            write_json(run / "models" / f"model-{k}.json", {"extra": extra})
            rows = ["epoch,steps,lr,train_loss,val_corr,val_corr_mouse-a,epoch_seconds"]
            rows += [f"{e},{4 * e},0.001,{1.0 / e:.3f},{0.1 * e:.3f},{0.1 * e:.3f},6.5" for e in (1, 2, 3)]
            (run / "models" / f"model-{k}.log.csv").write_text("\n".join(rows) + "\n")
    if "evaluation" in stages:
        metrics = {"single_trial_correlation": 0.21, "correlation_to_average": 0.35, "feve": 0.3}
        write_json(
            run / "evaluation" / "encoders.json",
            {
                "mice": {
                    MOUSE: {
                        "models": {"model-0": metrics, "model-1": {**metrics, "single_trial_correlation": 0.23}},
                        "ensemble": {**metrics, "single_trial_correlation": 0.25},
                        "truth": {**metrics, "single_trial_correlation": 0.40},
                    }
                },
                "seconds": 3.0,
            },
        )
    if "masks" in stages:
        yy, xx = np.mgrid[:H, :W]
        alpha = 1.6 * np.exp(-((xx - 32) ** 2 + (yy - 18) ** 2) / 200.0)
        save_npz(run / "masks" / f"{MOUSE}.npz", alpha=alpha, update_mask=alpha >= 0.5, eval_mask=alpha >= 1)
        write_json(
            run / "masks" / f"{MOUSE}.json", {"mask": {"update_pixels": 300, "eval_pixels": 120}, "seconds": 2.0}
        )
    if "reconstructions" in stages:
        _write_reconstructions(run, data / MOUSE, rng)
    if "analyses" in stages:
        _write_analyses(run)
    return run


def _write_analyses(run: Path) -> None:
    """Two analyses as `v1recon analyse` writes them: result.npz, result.json (summary), figure.png."""
    import imageio.v3 as iio

    folder = run / "analyses" / "population"
    r = np.array([[0.2, 0.3, 0.4, 0.5], [0.3, 0.4, 0.5, 0.6]])
    save_npz(folder / "result.npz", fractions=np.array([0.125, 0.25, 0.5, 1.0]), r=r)
    summary = {
        "title": "Population ablation",
        "description": "Nested neuron subsets.",
        "table": {"headers": ["neurons kept", "r mean"], "rows": [["12.5%", 0.25], ["100%", 0.55]]},
        "expected": [{"effect": "more neurons give better reconstructions", "holds": True, "why": "monotone"}],
        "statistics": {"friedman": {"p": 0.01}},
    }
    write_json(folder / "result.json", {"analysis": "population", "summary": summary, "seconds": 12.0})
    iio.imwrite(folder / "figure.png", np.full((20, 30), 200, np.uint8))
    folder = run / "analyses" / "masks"
    table = {
        "headers": ["update mask", "pixels", "r mean", "r SD"],
        "rows": [["none", 2304, 0.31, 0.1], ["standard", 900, 0.4, 0.1], ["strict", 400, 0.38, 0.1]],
    }
    write_json(folder / "result.json", {"summary": {"title": "Update masks", "table": table}})


def _write_reconstructions(run: Path, mouse_path: Path, rng: np.random.Generator) -> None:
    """Two jobs as `v1recon reconstruct` writes them: the encoders' reconstructions and the oracle's."""
    from v1recon.data import Recording
    from v1recon.metrics.video import video_metrics
    from v1recon.report.media import write_side_by_side_movie

    rec = Recording(mouse_path)
    eval_mask = np.zeros((H, W), bool)
    eval_mask[8:28, 16:48] = True
    for job, noise, oracle in (("final_test", 40.0, False), ("final_test-oracle", 10.0, True)):
        folder = run / "reconstructions" / job / MOUSE
        for n, tid in enumerate(rec.trial_ids(tier="final_test")):
            truth = rec.trial(tid).video
            per_model = np.clip(truth[None] + rng.normal(0, noise, (2, *truth.shape)), 0, 255).astype(np.float32)
            video = per_model.mean(axis=0)
            stem = folder / f"trial-{tid}"
            # confidence movies of the main job: the models' spread, and a constant that knows nothing
            confidence = {} if oracle else {"confidence_ensemble": per_model.std(axis=0, ddof=1),
                                            "confidence_unexplained": np.full_like(video, 30.0)}  # fmt: skip
            save_npz(
                f"{stem}.npz",
                reconstruction=video,
                truth=truth,
                per_model=per_model,
                eval_mask=eval_mask,
                update_mask=eval_mask,
                correlation=np.tile(np.linspace(0, 0.8, 20), (2, 1)),
                **confidence,
            )
            config = {
                "method": "fast",
                "iterations": 20,
                "ensemble": "average",
                "smooth_sigma": 0.5,
                "tier": "final_test",
                "oracle": oracle,
                "from_predicted": False,
            }
            write_json(
                f"{stem}.json",
                {
                    "config": config,
                    "condition": {"label": "oracle" if oracle else "ensemble"},
                    "models": {"encoders": ["ground truth"] if oracle else ["model-0", "model-1"]},
                    "mask": {"source": "masks/mouse-a.npz", "note": ""},
                    "cost": {"seconds": 1.25},
                    "metrics": {**video_metrics(video, truth, eval_mask), "best_single_model": 0.5},
                    **({} if oracle else {"confidence": {"arrays": {k: k.split("_")[1] for k in confidence}}}),
                },
            )
            if n == 0 and not oracle:  # the other trial's movie is made by the report from the npz
                write_side_by_side_movie(f"{stem}.mp4", {"truth": truth, "reconstruction": video}, mask=eval_mask)
        write_json(folder.parent / "summary.json", {"mean": {"video_correlation": 0.5}, "seconds_total": 2.5})


# -- tests ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """A run with every stage, its report written once (the tests only read)."""
    run = make_run(tmp_path_factory.mktemp("report"))
    write_report(run, compute=False)
    return run


def test_report_is_self_contained_and_has_every_section(full_run):
    run = full_run
    path = run / "report.html"
    assert path == run / "report.html"
    page = path.read_text()
    for anchor in ("summary", "data", "encoders", "reconstructions", "analyses", "paper", "run"):
        assert f'id="{anchor}"' in page
    # Nothing refers outside the page: only data URIs for media, no external scripts, styles or fonts.
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    # Every reconstructed trial has a movie: one from its .mp4, one made from its .npz.
    videos = re.findall(r'<video [^>]*src="data:video/mp4;base64,([^"]+)"', page)
    assert len(videos) == 2
    assert all(base64.b64decode(v)[4:8] == b"ftyp" for v in videos)
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert images and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "This section could not be rendered" not in page


def test_report_numbers_agree_with_the_files(full_run):
    run = full_run
    values = comparison_values(run)
    # Headline: mean over trials of the sidecars' video correlation.
    sidecars = [
        json.loads(p.read_text()) for p in sorted((run / "reconstructions" / "final_test").rglob("trial-*.json"))
    ]
    oracle = [
        json.loads(p.read_text()) for p in sorted((run / "reconstructions" / "final_test-oracle").rglob("*.json"))
    ]
    expected = np.mean([s["metrics"]["video_correlation"] for s in sidecars])
    assert values["video_corr"] == pytest.approx(expected)
    # Analyses: population means per fraction from result.npz, update masks from the summary table.
    assert values["video_corr_population_12.5"] == pytest.approx(0.25)
    assert values["video_corr_population_50"] == pytest.approx(0.45)
    assert values["video_corr_no_mask"] == pytest.approx(0.31)
    assert values["video_corr_strict_mask"] == pytest.approx(0.38)
    # The main reconstruction uses every neuron: it, not the analysis, gives the 100 % value.
    assert values["video_corr_population_100"] == pytest.approx(expected)
    # Encoder: mean over single models, not the ensemble or the truth.
    assert values["encoder_single_trial_corr"] == pytest.approx(0.22)
    # Unsmoothed: the plain per-model average, here identical to the stored video.
    assert values["video_corr_no_smoothing"] == pytest.approx(expected, abs=1e-5)
    page = (run / "report.html").read_text()
    sd = np.std([s["metrics"]["video_correlation"] for s in sidecars], ddof=1)
    assert f"<td>{expected:.3f} \u00b1 {sd:.3f}</td>" in page
    oracle_mean = np.mean([s["metrics"]["video_correlation"] for s in oracle if "metrics" in s])
    assert f"{oracle_mean:.3f}" in page  # the oracle beside ours
    assert "oracle: video r" in page
    assert '<td class="num">0.625</td>' in page  # ensemble / true model single-trial r = 0.25 / 0.40


def test_confidence_calibration_and_reliability_diagram(full_run):
    from v1recon.metrics.calibration import pooled_calibration

    page = (full_run / "report.html").read_text()
    items = []
    for npz in sorted((full_run / "reconstructions" / "final_test").rglob("trial-*.npz")):
        with np.load(npz) as f:
            items.append((f["confidence_ensemble"], f["reconstruction"], f["truth"], f["eval_mask"]))
    spread = pooled_calibration(items)  # the table shows what the files give
    assert f'<td class="num">{spread["spearman"]:.3f}</td>' in page
    assert "<h4>Confidence</h4>" in page and 'alt="reliability diagram"' in page
    assert page.count('alt="confidence of trial') == 2  # one confidence strip per trial of the main job
    assert "confidence Spearman" not in page  # these sidecars carry no per-trial calibration


def test_missing_stages_are_named_with_their_command(tmp_path):
    run = make_run(tmp_path, stages=())
    page = write_report(run, compute=False).read_text()
    assert "No reconstructions yet: run v1recon reconstruct RUN." in page
    assert "No encoder evaluation yet: run v1recon evaluate RUN." in page
    assert "No analyses yet: run v1recon analyse NAME RUN" in page
    assert "No trained models yet" in page
    assert "No mask for mouse-a yet" in page
    assert NOT_MEASURED in page
    assert "This section could not be rendered" not in page


def test_broken_files_do_not_break_the_report(full_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    (run / "evaluation" / "encoders.json").write_text("{not json")
    (run / "models" / "model-0.log.csv").write_text("epoch,train_loss\n1,abc\n")
    np.savez(run / "reconstructions" / "final_test" / MOUSE / "trial-4.npz", video=np.zeros(3))
    page = write_report(run, compute=False).read_text()
    assert "evaluation/encoders.json could not be read" in page
    assert page.count("<video ") == 2  # the good trials still show


def test_not_a_run_folder_is_one_sentence(tmp_path):
    with pytest.raises(V1ReconError, match="not a run folder"):
        write_report(tmp_path)
    result = subprocess.run([sys.executable, "-m", "v1recon", "report", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "not a run folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def test_cli_writes_to_out(tmp_path):
    run = make_run(tmp_path, stages=("models",))
    out = tmp_path / "elsewhere" / "page.html"
    result = subprocess.run(
        [sys.executable, "-m", "v1recon", "report", str(run), "--out", str(out), "--no-compute"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.read_text().startswith("<!DOCTYPE html>")
    assert not (run / "report.html").exists()


def test_published_numbers_and_markdown_table():
    assert PUBLISHED_BY_KEY["video_corr"].value == 0.569
    assert PUBLISHED_BY_KEY["encoder_single_trial_corr"].value == 0.2913
    assert [PUBLISHED_BY_KEY[f"video_corr_population_{p}"].value for p in ("12.5", "25", "50", "100")] == [
        0.344,
        0.427,
        0.512,
        0.569,
    ]
    table = comparison_markdown({"video_corr": 0.41234})
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(PUBLISHED)
    assert "| 0.569 | 0.412 |" in lines[2]
    assert "| 0.510 | not measured in this run |" in table
    assert "| 0.2913 |" in table and "real data (published)" in lines[0] and "in-silico mouse (this run)" in lines[0]


def test_example_predictions_are_computed_from_the_run_models(tmp_path):
    """With --compute the report predicts a held-out trial with the run's saved model (untrained here)."""
    from v1recon.models import build_model, save_model
    from v1recon.report.sections.encoders import _computed_example

    run = make_run(tmp_path, stages=())
    (run / "models").mkdir()
    model = build_model("fast3d", [N])
    save_model(run / "models" / "model-0", model, {"complete": True, "mouse_names": [MOUSE], "epoch": 1})
    splits = [s.to_dict() for s in plan_splits(1, "folds", 0, 7, 0)]
    write_json(run / "run.json", {**json.loads((run / "run.json").read_text()), "splits": splits})
    from v1recon.report.context import Context

    ctx = Context(run, json.loads((run / "run.json").read_text()), compute=True)
    predicted, recorded, label = _computed_example(ctx, MOUSE)
    assert predicted.shape == recorded.shape == (N, T)
    assert np.isfinite(predicted).all() and "oracle" in label
    page = write_report(run).read_text()
    assert 'alt="example neurons of mouse-a"' in page


def test_a_set_is_what_its_condition_label_says_not_its_folder_name():
    from v1recon.report.collect import TrialFiles
    from v1recon.report.sections.reconstructions import MAIN, ORACLE, set_kind

    def trial(name, sidecar):
        return TrialFiles(name, "final_test", MOUSE, 1, sidecar=sidecar)

    assert set_kind([trial("oracle-looking-name", {"condition": {"label": "ensemble"}})]) == MAIN
    assert set_kind([trial("final_test", {"condition": {"label": "oracle"}})]) == ORACLE
    legacy = {"config": {"ensemble": "gradient", "oracle": False}, "models": {"encoders": ["model-0", "model-1"]}}
    assert set_kind([trial("final_test", legacy)]) == "video_corr_gradient_ensembling"  # derived from the config
    unsmoothed = {"config": {"smooth_sigma": 0}, "models": {"encoders": ["model-0", "model-1"]}}
    assert set_kind([trial("x", unsmoothed)]) == "video_corr_no_smoothing"


FAMILY_ROWS = [
    {"family": "energy", "preset": "subunit", "models": 3, "train_s": 1715.0, "truth_r": 0.37, "ens_truth": 0.855,
     "best_truth": 0.842, "by_type": {"simple": 0.861, "complex": 0.849}},
    {"family": "cascade", "preset": "fast3d", "models": 3, "train_s": 1800.0, "truth_r": 0.35, "ens_truth": 0.612,
     "best_truth": 0.588, "by_type": {"end-stopped": 0.437}, "recon_ensemble": 0.21, "recon_oracle": 0.3,
     "recon_ratio": 0.7},
]  # fmt: skip


def test_families_section_shows_each_family_and_cell_type(tmp_path):
    run = make_run(tmp_path, stages=("models",))
    (tmp_path / "families.json").write_text(json.dumps(FAMILY_ROWS))
    page = write_report(run, compute=False, families=tmp_path / "families.json").read_text()
    section = page[page.index('id="families"') :]
    assert "Family energy" in section and "Family cascade" in section
    for text in ("end-stopped / truth", "0.437", "0.612", "recon / oracle", "0.700", "30.0"):
        assert text in section
    assert 'id="families"' not in write_report(run, compute=False).read_text()  # only when asked for


@pytest.mark.parametrize(
    "content, problem",
    [("{not json", "not a readable JSON file"), ("[]", "non-empty list"), ('[{"family": "energy"}]', "row 0 lacks")],
)
def test_a_bad_families_file_is_refused_before_anything_is_written(tmp_path, content, problem):
    run = make_run(tmp_path, stages=("models",))
    bad = tmp_path / "families.json"
    bad.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "v1recon", "report", str(run), "--families", str(bad), "--no-compute"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert str(bad) in result.stderr and problem in result.stderr
    assert not (run / "report.html").exists()
