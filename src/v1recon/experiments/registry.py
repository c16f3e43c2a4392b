"""The analyses as plain data: one config dataclass per analysis (CPU-sized defaults; `published()` gives the
published design), the settings every analysis shares, and `ANALYSES`, the map from a command name to the module
that runs it. Every analysis module offers `run(setup, config, recon, settings) -> (arrays, summary)` and
`draw(path, arrays, summary)`; `run_analysis` opens the mouse, runs one and writes RUN/analyses/<name>/.

An analysis made of independent reconstructions (a grid cell, a condition, a neuron fraction) also offers
`units(setup, cfg, settings) -> {unit: spec}`, `reconstruct_unit(setup, cfg, recon, settings, spec) -> arrays` and
`combine(setup, cfg, recon, settings, parts) -> (arrays, summary)`; `run_analysis` then runs it as a job of one task
per unit (local, or on Ray with `executor="ray"`), whose parts wait in RUN/analyses/.<name>.parts/ until the
result is written, so that an interrupted analysis resumes with the same command.

This module imports nothing heavy, so `v1recon analyse --help` and the option defaults read it directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from v1recon import PUBLISHED_ITERATIONS

# Published designs (Bauer, Margrie & Clopath 2025).
NOISE_CONSTANTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # pixels (spatial) and frames (temporal)
GRATING_SF = (0.5, 0.25, 0.125, 0.0625)  # cycles per pixel
GRATING_TF = (15.0, 7.5, 3.75, 1.875, 0.94, 0.47, 0.0)  # Hz at 30 frames/s
GRATING_DIRECTIONS = (0.0, 90.0, 180.0, 270.0)  # degrees
POPULATION_FRACTIONS = (1.0, 0.5, 0.25, 0.125)
DECODER_LAGS = 10  # ridge decoder: frames of future activity per decoded frame (0..10: 333 ms)
DECODER_COMPONENTS = 128  # ridge decoder: principal components of the responses
PUBLISHED_TRIALS = 10  # distinct test movies per mouse
CPU_ITERATIONS = 60  # optimiser steps per reconstruction by default: affordable on a CPU
CPU_TRIALS = 4
CPU_FRAMES = 90  # held-out trials cut to their first 90 frames (frames 30.. are scored); 0 = whole trials


@dataclass(frozen=True)
class Settings:
    """What every analysis shares: where the mouse comes from and how its movies are reconstructed."""

    data: Path | None = None  # recording folder (None: the one the run was trained on)
    mouse: str | None = None  # None: the run's first mouse
    method: str = "fast"  # fast or paper
    iterations: int | None = CPU_ITERATIONS
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    @classmethod
    def published(cls, **over) -> Settings:
        return cls(method="paper", iterations=PUBLISHED_ITERATIONS, **over)


@dataclass(frozen=True)
class ResolutionNoise:
    spatial: tuple[float, ...] = (0.0, 1.0, 2.0, 8.0)  # length constants, pixels
    temporal: tuple[float, ...] = (1.0, 4.0)  # length constants, frames
    repeats: int = 1  # noise movies per grid cell
    invert: bool = True  # add the phase-inverted copy (255 - v) of every movie
    null_movies: int = 20  # fresh noise movies per cell for the significance test
    oracle: bool = True  # in silico: also reconstruct through the true model

    @classmethod
    def published(cls) -> ResolutionNoise:
        return cls(spatial=NOISE_CONSTANTS, temporal=NOISE_CONSTANTS, repeats=5, invert=True)


@dataclass(frozen=True)
class Gratings:
    sf: tuple[float, ...] = (0.25, 0.0625)  # cycles per pixel
    tf: tuple[float, ...] = (3.75, 0.94, 0.0)  # Hz
    directions: tuple[float, ...] = (0.0, 90.0)  # degrees
    oracle: bool = True

    @classmethod
    def published(cls) -> Gratings:
        return cls(sf=GRATING_SF, tf=GRATING_TF, directions=GRATING_DIRECTIONS)


@dataclass(frozen=True)
class HeldOutTrials:
    """The analyses of recorded held-out trials: how many, and how much of each."""

    trials: int = CPU_TRIALS  # distinct test movies
    frames: int = CPU_FRAMES  # first N frames of each (0 = whole trials)

    @classmethod
    def published(cls):
        return cls(trials=PUBLISHED_TRIALS, frames=0)


@dataclass(frozen=True)
class Population(HeldOutTrials):
    fractions: tuple[float, ...] = POPULATION_FRACTIONS
    zero_dropped: bool = False  # published variant: dropped neurons stay in the loss with target 0


@dataclass(frozen=True)
class EnsembleSize(HeldOutTrials):
    max_subsets: int = 10  # model subsets averaged per ensemble size


@dataclass(frozen=True)
class UpdateMasks(HeldOutTrials):
    pass


@dataclass(frozen=True)
class UpperBounds(HeldOutTrials):
    pass


@dataclass(frozen=True)
class RFMapping:
    stride: int = 2  # probe every STRIDE-th row and column (1 = the published 36 x 64 x ON/OFF map)
    batch_size: int = 32  # probe clips per forward pass
    true_model: bool = True  # in silico: also map the true model
    phase: int = 15  # frames before / during / after each probe (published)

    @classmethod
    def published(cls) -> RFMapping:
        return cls(stride=1)


@dataclass(frozen=True)
class Baselines:
    trials: int | None = None  # None: the trials RUN/reconstructions holds, or 6 test movies
    lags: int = DECODER_LAGS
    components: int = DECODER_COMPONENTS
    max_train_trials: int | None = None  # None: every training trial
    reconstruct: bool = True  # reconstruct the trials here when RUN/reconstructions holds none of them

    @classmethod
    def published(cls) -> Baselines:
        return cls()


@dataclass(frozen=True)
class Analysis:
    """One analysis: its command name, its config class and the module with `run` and `draw`."""

    name: str
    config: type
    module: str  # under v1recon.experiments
    needs_mask: bool = False  # reads RUN/masks/<mouse>.npz
    prints: str = "expected"  # what the command prints: the "expected" effects or the "findings"

    def load(self):
        return importlib.import_module(f"v1recon.experiments.{self.module}")


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("resolution-noise", ResolutionNoise, "resolution_noise"),
        Analysis("gratings", Gratings, "gratings"),
        Analysis("population", Population, "population"),
        Analysis("ensemble-size", EnsembleSize, "ensemble_size"),
        Analysis("masks", UpdateMasks, "update_masks", needs_mask=True),
        Analysis("upper-bounds", UpperBounds, "upper_bounds"),
        Analysis("rf-mapping", RFMapping, "rf_mapping", prints="findings"),
        Analysis("baselines", Baselines, "baselines", prints="findings"),
    )
}


@dataclass
class AnalysisResult:
    folder: Path
    summary: dict
    seconds: float
    lines: list[str] = field(default_factory=list)  # what the command prints about the result


def run_analysis(
    run_dir: str | Path,
    name: str,
    config,
    settings: Settings = Settings(),
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    executor: str = "local",
    address: str | None = None,
) -> AnalysisResult:
    """Open the run's mouse, run analysis `name` with `config` and write RUN/analyses/<name>/ in one piece.

    An existing result is refused before any computation unless `overwrite`.
    """
    from v1recon.experiments import common, results
    from v1recon.jobs.mouse import open_setup

    analysis = ANALYSES[name]
    if not isinstance(config, analysis.config):
        raise TypeError(f"analysis {name} takes a {analysis.config.__name__}, got {type(config).__name__}")
    module = analysis.load()
    results.check_output(run_dir, name, overwrite)
    key = _setup_key(run_dir, settings, analysis.needs_mask)
    setup = open_setup(run_dir, settings.data, settings.mouse, settings.device, need_mask=analysis.needs_mask, log=log)
    _OPENED.clear()
    _OPENED[key] = setup  # the tasks of a local job use it instead of opening the mouse again
    recon = common.recon_config(settings.method, settings.iterations, settings.seed, 8)
    timer = results.Timer()
    if hasattr(module, "units"):
        arrays, summary = _run_as_job(analysis, module, setup, config, recon, settings, executor, address)
    else:
        arrays, summary = module.run(setup, config, recon, settings)
    seconds = timer()
    record = {**asdict(config), **asdict(settings), "recon": recon.to_dict()}
    draw = lambda path: module.draw(path, arrays, summary)  # noqa: E731
    folder = results.write_analysis(run_dir, name, arrays, summary, record, draw, setup, seconds, overwrite)
    _remove_parts(Path(run_dir), name)
    return AnalysisResult(folder, summary, seconds, _lines(summary, analysis.prints))


def run_units(module, setup, cfg, recon, settings) -> tuple[dict, dict]:
    """An analysis made of units, in this process: every unit, then their combination (what `run` does)."""
    units = module.units(setup, cfg, settings)
    parts = {u: module.reconstruct_unit(setup, cfg, recon, settings, spec) for u, spec in units.items()}
    return module.combine(setup, cfg, recon, settings, parts)


def parts_dir(run_dir: Path, name: str) -> Path:
    """Where the parts of an analysis wait until its result is written: RUN/analyses/.<name>.parts."""
    from v1recon.experiments import results

    return results.analysis_dir(run_dir, name).parent / f".{name}.parts"


def analysis_unit(run_dir: str, name: str, config, settings: Settings, recon, spec: dict, path: str) -> dict:
    """One task: reconstruct one unit of an analysis and save its arrays to `path`."""
    import numpy as np

    from v1recon.io import save_npz
    from v1recon.jobs.mouse import open_setup

    analysis = ANALYSES[name]
    key = _setup_key(run_dir, settings, analysis.needs_mask)
    if key not in _OPENED:  # a worker process of its own (Ray)
        _OPENED.clear()
        _OPENED[key] = open_setup(
            run_dir, settings.data, settings.mouse, settings.device, analysis.needs_mask, lambda _: 0
        )
    setup = _OPENED[key]
    arrays = analysis.load().reconstruct_unit(setup, config, recon, settings, spec)
    save_npz(path, **arrays)
    return {"arrays": sorted(arrays), "bytes": int(sum(np.asarray(v).nbytes for v in arrays.values()))}


def _run_as_job(analysis: Analysis, module, setup, config, recon, settings: Settings, executor, address):
    import numpy as np

    from v1recon.io import remove_temporaries
    from v1recon.jobs.outputs import locked
    from v1recon.jobs.tasks import STAMPS_DIR, Job, Task, run_job

    run_dir = Path(setup.run.path)
    folder = parts_dir(run_dir, analysis.name)
    shared = {"analysis": asdict(config), "seed": settings.seed, "recon": recon.to_dict(), "data": setup.identity()}
    gpus = 1.0 if setup.device.type == "cuda" else 0.0
    tasks = []
    for unit, spec in module.units(setup, config, settings).items():
        path = folder / f"{unit.replace('/', '_')}.npz"
        kwargs = dict(run_dir=str(run_dir), name=analysis.name, config=config, settings=settings, recon=recon,
                      spec=spec, path=str(path))  # fmt: skip
        tasks.append(Task(unit, analysis_unit, kwargs, (path,), {**shared, "spec": spec}, gpus=gpus))
    with locked(folder):
        remove_temporaries(folder)  # half-written parts of a killed analysis
        run_job(Job(analysis.name, folder / STAMPS_DIR, tasks), executor, address, progress=settings.progress)
    parts = {}
    for task in tasks:
        with np.load(task.outputs[0]) as f:
            parts[task.name] = {k: f[k] for k in f.files}
    return module.combine(setup, config, recon, settings, parts)


def _remove_parts(run_dir: Path, name: str) -> None:
    import shutil

    shutil.rmtree(parts_dir(run_dir, name), ignore_errors=True)


_OPENED: dict[tuple, object] = {}  # the mouse last opened in this process, by what it was opened from


def _setup_key(run_dir, settings: Settings, need_mask: bool) -> tuple:
    data = None if settings.data is None else str(Path(settings.data).resolve())
    return (str(Path(run_dir).resolve()), data, settings.mouse, settings.device, need_mask)


def _lines(summary: dict, prints: str) -> list[str]:
    if prints == "findings":
        return list(summary.get("findings", []))
    verdicts = {True: "yes", False: "NO", None: "not tested"}
    return [f"{row['effect']}: {verdicts[row['holds']]} ({row['why']})" for row in summary.get("expected", [])]
