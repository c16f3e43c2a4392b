"""Simulate in-silico mice: stimuli + behaviour -> ground-truth rates -> noisy responses -> Sensorium folders.

Layout written by `simulate(out, preset, n_mice, seed, family)` (family: the ground-truth model, v1recon.sim.families):

    OUT/<mouse>/                       Sensorium-layout recording (v1recon.data.write_recording)
    OUT/<mouse>.truth.safetensors      ground-truth model parameters (GroundTruthV1.load / load_truth)
    OUT/<mouse>.truth.json             its config, behaviour constants and noise calibration
    OUT/<mouse>.png                    figure: RF mosaic, population RF, responses vs rates, behaviour
    OUT/simulation.json                preset, seed, per-mouse summary, timing, disk size, provenance

Tiers per mouse: train (natural movies from training photographs), oracle, live_test and final_test (each a
few test movies shown repeatedly, responses present). Test movies are shared by all mice of one seed (as in the
Sensorium release), training movies and RF layouts differ between mice. Trial ids are shuffled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from v1recon.data.recording import TEST_TIERS
from v1recon.errors import V1ReconError
from v1recon.sim.behaviour import EyeAndBody, behaviour_trace, random_eye_and_body
from v1recon.sim.families import DEFAULT_FAMILY, FAMILY_NAMES, family_class
from v1recon.sim.model import GroundTruthV1, truth_path
from v1recon.sim.observation import CorrelationMeter, sample_responses
from v1recon.sim.stimuli import natural_movie


@dataclass(frozen=True)
class Preset:
    """Size of one simulated mouse."""

    n_neurons: int
    n_train: int  # training trials (one natural movie each)
    n_test_movies: int  # distinct movies per test tier (oracle, live_test, final_test)
    n_repeats: int  # repeats of each test movie
    n_frames: int  # frames per trial (30 Hz)
    pad_frames: int  # NaN padding after the valid frames, as in the public release

    @property
    def n_trials(self) -> int:
        return self.n_train + len(TEST_TIERS) * self.n_test_movies * self.n_repeats

    def disk_bytes(self) -> int:
        """Bytes of one mouse folder (float32 video, responses, behaviour, pupil centre, padded)."""
        per_frame = 4 * (36 * 64 + self.n_neurons + 4)
        return self.n_trials * per_frame * (self.n_frames + self.pad_frames)

    def estimated_seconds(self, n_mice: int = 1, workers: int = 1) -> float:
        """Rough time on an otherwise idle CPU, one core per worker (model, noise, movies, writing, figure)."""
        per_trial = self.n_frames / 300 * (0.06 + 0.17 * self.n_neurons / 1000)  # measured on a 2-core CPU
        return (5 + self.n_trials * per_trial) * -(-n_mice // max(1, workers))


PRESETS = {
    "tiny": Preset(n_neurons=60, n_train=16, n_test_movies=2, n_repeats=3, n_frames=90, pad_frames=10),
    "default": Preset(n_neurons=1000, n_train=200, n_test_movies=6, n_repeats=10, n_frames=300, pad_frames=15),
    "paper": Preset(n_neurons=8000, n_train=350, n_test_movies=6, n_repeats=10, n_frames=300, pad_frames=15),
}


def mouse_name(seed: int, index: int) -> str:
    return f"insilico-s{seed}-m{index}"


def _plan(preset: Preset, rng: np.random.Generator) -> list[tuple[str, int]]:
    """Presentation order: (tier, movie index) for every trial, shuffled; test movies repeated."""
    plan = [("train", i) for i in range(preset.n_train)]
    for t, tier in enumerate(TEST_TIERS):
        for m in range(preset.n_test_movies):
            plan += [(tier, t * preset.n_test_movies + m)] * preset.n_repeats
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


def _movie(rng: np.random.Generator, preset: Preset, tier: str, index: int, test_movies: list[np.ndarray]):
    """A fresh training movie, or the test movie `index` (repeated across trials)."""
    return natural_movie(rng, preset.n_frames, "train") if tier == "train" else test_movies[index]


def simulate_mouse(
    path: Path,
    model: GroundTruthV1,
    eye: EyeAndBody,
    preset: Preset,
    seed: int,
    test_movies: list[np.ndarray],
    progress: bool = True,
    position: int = 0,
) -> dict:
    """Simulate one mouse into the folder `path` (must not exist); returns its summary (noise calibration)."""
    from tqdm import tqdm

    from v1recon.data import Trial, write_recording

    rng = np.random.default_rng([seed, 2])
    plan = _plan(preset, rng)
    trial_ids = rng.permutation(len(plan))  # ids are not in presentation order
    meter = CorrelationMeter(model.n_neurons)
    calcium = model.calcium.cpu().numpy().astype(np.float64)
    batch = max(1, min(8, 4000 // model.n_neurons))
    bar = tqdm(total=len(plan), desc=path.name, unit="trial", disable=not progress, leave=False, position=position)
    keep = {"example": None}

    def draw(chunk):  # stimuli and behaviour of a chunk of trials
        videos = np.stack([_movie(rng, preset, tier, m, test_movies) for tier, m in chunk])
        return videos, np.stack([behaviour_trace(rng, preset.n_frames, eye) for _ in chunk])

    def rates(videos, behaviour):
        with torch.no_grad():
            device = model.calcium.device
            expected, rate = model(
                torch.from_numpy(videos).to(device), torch.from_numpy(behaviour).to(device), return_spike_rate=True
            )
        return expected.cpu().numpy(), rate.cpu().numpy()

    def finish(start, chunk, videos, behaviour, job) -> Iterator[Trial]:  # noise, then the trials in order
        expected, rate = job.result()
        responses = sample_responses(rng, rate, calcium, state_sd=model.state_sd())
        for j, (tier, _) in enumerate(chunk):
            if tier != "train":
                meter.update(expected[j], responses[j])
                # the figure shows the test trial with the most running, to show the running gain
                if keep["example"] is None or behaviour[j, 1].std() > keep["example"][1][1].std():
                    keep["example"] = (videos[j], behaviour[j], expected[j], responses[j])
            yield Trial(int(trial_ids[start + j]), tier, videos[j], responses[j], behaviour[j])
        bar.update(len(chunk))

    def trials() -> Iterator[Trial]:
        # The rates of the next chunk are computed in a second thread while this one samples the noise of the
        # previous chunk and writes it: both cores work on one mouse, and the order of the random draws (inputs
        # of chunk k + 1 before the noise of chunk k) is fixed, so the files do not depend on the thread count.
        # the second thread sets its own torch thread count (one per operation, like the caller's)
        with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            pending = None
            for start in range(0, len(plan), batch):
                chunk = plan[start : start + batch]
                videos, behaviour = draw(chunk)
                job = pool.submit(rates, videos, behaviour)
                if pending is not None:
                    yield from finish(*pending)
                pending = (start, chunk, videos, behaviour, job)
            if pending is not None:
                yield from finish(*pending)

    units = np.arange(1, model.n_neurons + 1)
    coordinates = model.coordinates.cpu().numpy()
    write_recording(path, trials(), units, coordinates, pad_to=preset.n_frames + preset.pad_frames)
    bar.close()
    corr = meter.correlation()
    return {
        "name": path.name,
        "n_neurons": model.n_neurons,
        "n_trials": len(plan),
        "single_trial_correlation_median": float(np.median(corr)),
        "single_trial_correlation_mean": float(np.mean(corr)),
        "single_trial_correlation_quartiles": [float(q) for q in np.quantile(corr, [0.25, 0.75])],
        "example": keep["example"],
    }


def _test_movies(preset: Preset, seed: int) -> list[np.ndarray]:
    """The test movies of a seed (shared by all its mice): n_test_movies per test tier."""
    rng = np.random.default_rng([seed, 1])
    return [natural_movie(rng, preset.n_frames, "test") for _ in range(len(TEST_TIERS) * preset.n_test_movies)]


def _one_mouse(folder: Path, preset: Preset, seed: int, index: int, options: dict) -> dict:
    """Simulate mouse `index` of `seed` into folder/<mouse> with its truth and figure; returns its summary.

    Runs in a worker process when several mice are simulated in parallel. Every torch operation of the ground
    truth runs on one thread (`simulate_mouse` overlaps two of them), so that the files are byte-identical for
    a seed whatever the worker count and OMP_NUM_THREADS.
    """
    from v1recon.device import torch_threads

    with torch_threads(1):
        return _one_mouse_one_thread(folder, preset, seed, index, options)


def _one_mouse_one_thread(folder: Path, preset: Preset, seed: int, index: int, options: dict) -> dict:
    from v1recon.device import pick_device
    from v1recon.io import read_json, write_json

    t0 = time.perf_counter()
    name = mouse_name(seed, index)
    mouse_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    eye = random_eye_and_body(np.random.default_rng([mouse_seed, 3]))
    config = {
        "pupil_ref_x": eye.pupil_ref_x,
        "pupil_ref_y": eye.pupil_ref_y,
        "dilation_ref": eye.dilation_rest + 0.5 * eye.dilation_running,
    }
    model = family_class(options.get("family", DEFAULT_FAMILY)).random(preset.n_neurons, mouse_seed, config, eye=eye)
    movies = _test_movies(preset, seed)
    device = pick_device(options.get("device", "cpu"))
    summary = simulate_mouse(
        folder / name, model.to(device), eye, preset, mouse_seed, movies, options.get("progress", True), index
    )
    model = model.cpu()
    example = summary.pop("example")
    truth = model.save(truth_path(folder / name))
    meta = truth.with_suffix(".json")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(meta, {**read_json(meta), "mouse": name, "behaviour": asdict(eye), "calibration": summary})
    if options.get("figure", True):
        from v1recon.sim.figure import mouse_figure

        title = (
            f"{name}: in-silico mouse ({model.family} family), {model.n_neurons} neurons; median single-trial "
            f"correlation of responses with the noise-free rates {summary['single_trial_correlation_median']:.2f}"
        )
        mouse_figure(folder / f"{name}.png", model, example, title=title)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def simulate_mouse_task(folder: str, preset: str, seed: int, index: int, options: dict) -> dict:
    """The task of one mouse: folder/<mouse>/, its truth and figure (a half-written earlier attempt is replaced)."""
    import shutil

    folder = Path(folder)
    name = mouse_name(seed, index)
    shutil.rmtree(folder / name, ignore_errors=True)
    return _one_mouse(folder, PRESETS[preset], seed, index, options)


def partial_folder(out: Path) -> Path:
    """Where a simulation is written until every mouse is done: a hidden sibling of the output folder, kept when
    the simulation is interrupted so that the same command resumes it."""
    return out.parent / f".{out.name}.partial"


def simulation_job(work: Path, preset: str, seed: int, n_mice: int, options: dict):
    """One task per mouse, writing work/<mouse>/ with its truth (and figure) beside it."""
    from v1recon.jobs.tasks import STAMPS_DIR, Job, Task

    gpus = 1.0 if "cuda" in options.get("device", "cpu") else 0.0
    tasks = []
    for k in range(n_mice):
        name = mouse_name(seed, k)
        truth = truth_path(work / name)
        outputs = (work / name, truth, truth.with_suffix(".json"))
        if options.get("figure", True):
            outputs += (work / f"{name}.png",)
        kwargs = dict(folder=str(work), preset=preset, seed=seed, index=k, options=options)
        config = {"preset": preset, "seed": seed, "index": k, **{o: options[o] for o in ("figure", "family")}}
        tasks.append(Task(name, simulate_mouse_task, kwargs, outputs, config, gpus=gpus))
    return Job("simulate", work / STAMPS_DIR, tasks)


def simulate(
    out: str | os.PathLike,
    preset: str = "default",
    n_mice: int = 2,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    figure: bool = True,
    log=print,
    device: str = "cpu",
    workers: int = 0,
    family: str = DEFAULT_FAMILY,
    executor: str = "local",
    address: str | None = None,
) -> dict:
    """Write `n_mice` simulated mice into the folder `out` (layout in the module docstring); returns the summary.

    `family` is the ground-truth model: "energy" (GroundTruthV1, Gabor energy cells) or "cascade" (CascadeV1:
    surround and cross-orientation suppression, end-stopping, LN-LN subunits, ON/OFF cells, contrast adaptation,
    running suppression, an unobserved shared brain state).

    A job of one task per mouse (`executor` "local" or "ray"), written into `partial_folder(out)`; the output folder
    appears only when every mouse is written. An interrupted simulation resumes with the same call (finished mice
    are kept). An existing non-empty folder is refused unless `overwrite`. `device` runs the ground-truth model there
    ("cpu", "cuda", "auto"); results are the same up to floating-point rounding. `workers`: local processes
    simulating mice in parallel (0 = automatic: one per CPU core for presets that take more than a few seconds per
    mouse, on the CPU).

    Same seed and preset on the CPU -> byte-identical recordings, truth and figures, for any executor, worker count
    and OMP_NUM_THREADS (only timings and provenance in the JSON files differ).
    """
    import shutil

    from v1recon.device import pick_device
    from v1recon.io import atomic_path, provenance, write_json
    from v1recon.jobs.outputs import locked
    from v1recon.jobs.tasks import STAMPS_DIR, config_hash, run_job

    out = Path(out)
    if preset not in PRESETS:
        raise V1ReconError(f"{out}: unknown preset {preset!r} (known: {', '.join(PRESETS)}).")
    if family not in FAMILY_NAMES:
        raise V1ReconError(f"{out}: unknown model family {family!r} (known: {', '.join(FAMILY_NAMES)}).")
    if n_mice < 1:
        raise V1ReconError(f"{out}: --mice must be at least 1, got {n_mice}.")
    if out.exists() and not out.is_dir():
        raise V1ReconError(f"{out}: output path exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise V1ReconError(f"{out}: output folder already holds files; pass --overwrite to replace it.")
    pick_device(device)  # a bad --device fails before anything is written
    p = PRESETS[preset]
    if workers <= 0:
        parallel = device == "cpu" and p.estimated_seconds() > 30
        workers = min(n_mice, os.cpu_count() or 1) if parallel else 1
    workers = min(workers, n_mice)
    options = {"progress": progress, "figure": figure, "device": device, "family": family}
    started = time.perf_counter()
    work = partial_folder(out)
    identity = config_hash({"preset": preset, "seed": seed, "mice": n_mice, "figure": figure, "family": family})
    with locked(work):
        _start_partial(work, identity, log)
        job = simulation_job(work, preset, seed, n_mice, options)
        results = run_job(job, executor, address, progress=progress and n_mice > 1, workers=workers)
        mice = [results[t.name] for t in job.tasks]
        for m in mice:
            log(
                f"{m['name']}: {m['n_neurons']} neurons, {m['n_trials']} trials, median single-trial correlation "
                f"of responses with the noise-free rates {m['single_trial_correlation_median']:.3f} "
                f"(test tiers), {m['seconds']} s"
            )
        result = {
            "preset": preset,
            "family": family,
            "preset_config": asdict(p),
            "seed": seed,
            "mice": mice,
            "workers": workers,
            "executor": executor,
            "seconds": round(time.perf_counter() - started, 1),
            "disk_bytes": _folder_bytes(work),
            "provenance": provenance(),
        }
        write_json(work / "simulation.json", result)
        shutil.rmtree(work / STAMPS_DIR)
        (work / PARTIAL_CONFIG).unlink()
    with atomic_path(out) as target:
        os.replace(work, target)
    return result


PARTIAL_CONFIG = ".simulation-config"


def _start_partial(work: Path, identity: str, log) -> None:
    """Keep what an interrupted simulation of the same configuration wrote into `work`; empty it otherwise."""
    import shutil

    from v1recon.io import remove_temporaries
    from v1recon.jobs.outputs import LOCK

    marker = work / PARTIAL_CONFIG
    if marker.is_file() and marker.read_text() == identity:
        log(f"{work}: resuming an interrupted simulation of the same configuration")
        remove_temporaries(work)  # what a killed writer left half-written (the lock says none is alive)
        return
    for path in work.iterdir():
        if path.name != LOCK:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    marker.write_text(identity)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
