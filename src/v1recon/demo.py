"""The whole pipeline on the in-silico mouse, as one resumable job: simulate, train, evaluate, masks, reconstruct
(ensemble, oracle through the true model, upper bound from predicted responses) and report.

Layout of the demo folder RUN (it is also the training run folder, so every other command accepts it):
    RUN/data/                    the simulated mice (Sensorium layout) and their ground truth
    RUN/run.json, RUN/models/    the trained ensemble
    RUN/evaluation/              encoder metrics with the ground-truth ceiling
    RUN/masks/                   one alpha mask per mouse
    RUN/reconstructions/<set>/   final_test (ensemble), final_test-oracle, final_test-predicted
    RUN/report.html              the report
    RUN/demo.json                stage timings; a stage whose output exists is skipped on the next run
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from v1recon.errors import V1ReconError
from v1recon.io import read_json, write_json
from v1recon.runs import DEMO_FILE

TIER = "final_test"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; the defaults fit the CPU budget of the README (about 35 minutes on 2 cores)."""

    sim_preset: str = "default"
    sim_family: str = "energy"  # the in-silico mouse's model family (v1recon.sim.families)
    mice: int = 2
    model_preset: str = "subunit"
    models: int = 3
    train_minutes: float = 30.0  # wall-clock budget for training the whole ensemble, all mice
    mask_iterations: int = 60
    recon_iterations: int = 30  # fast-method step limit; about 0.7 of the converged correlation (CPU budget)
    trials_per_mouse: int = 2  # one repeat of each of this many test movies
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


class Demo:
    """Runs the stages in order; each stage knows its output and is skipped when that output exists."""

    def __init__(self, run_dir: str | Path, config: DemoConfig, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.data_dir = self.run_dir / "data"
        self.config = config
        self.log = log
        self.state_path = self.run_dir / DEMO_FILE
        self.state = read_json(self.state_path) if self.state_path.is_file() else {"stages": {}}
        old = self.state.get("config")
        if old is not None and "sim_family" not in old:  # written before there were families: energy
            old = {**old, "sim_family": "energy"}
        if old is not None and old != config.to_dict():
            raise V1ReconError(
                f"{self.state_path}: this folder holds a demo run with another configuration; "
                "choose another folder or pass --overwrite."
            )
        self.state["config"] = config.to_dict()

    # -- stages ------------------------------------------------------------------------------------------------
    def stages(self) -> list[tuple[str, Callable[[], bool], Callable[[], None]]]:
        """(name, is_done, run) for every stage, in order."""

        def reconstructed(variant: str) -> Callable[[], bool]:
            return lambda: (self._recon_dir(variant) / "summary.json").is_file()

        return [
            ("simulate", lambda: (self.data_dir / "simulation.json").is_file(), self.simulate),
            ("train", self.training_done, self.train),
            ("evaluate", lambda: (self.run_dir / "evaluation" / "encoders.json").is_file(), self.evaluate),
            ("masks", self.masks_done, self.masks),
            ("reconstruct", reconstructed(""), lambda: self.reconstruct("")),
            ("oracle", reconstructed("oracle"), lambda: self.reconstruct("oracle")),
            ("upper bound", reconstructed("predicted"), lambda: self.reconstruct("predicted")),
            ("report", lambda: False, self.report),
        ]

    def simulate(self) -> None:
        from v1recon.sim.simulate import simulate

        c = self.config
        simulate(self.data_dir, preset=c.sim_preset, n_mice=c.mice, seed=c.seed, overwrite=True, log=self.log,
                 family=c.sim_family)  # fmt: skip

    def training_done(self) -> bool:
        from v1recon.runs import RUN_FILE, load_run

        if not (self.run_dir / RUN_FILE).is_file():
            return False
        return len(load_run(self.run_dir).complete_models()) >= self.config.models

    def train(self) -> None:
        from v1recon.training.run import train_run

        c = self.config
        train_run(
            self.data_dir,
            self.run_dir,
            preset=c.model_preset,
            n_models=c.models,
            seed=c.seed,
            device=c.device,
            time_budget_min=c.train_minutes,
            log=self.log,
        )

    def evaluate(self) -> None:
        from v1recon.training.evaluate import evaluate_run, format_table

        # The tier that is reconstructed; all three test tiers triple the cost on a CPU.
        evaluation = evaluate_run(self.run_dir, self.data_dir, device=self.config.device, tiers=(TIER,))
        self.log(format_table(evaluation))

    def masks_done(self) -> bool:
        from v1recon.recon.masks import mask_path

        names = [m["name"] for m in read_json(self.run_dir / "run.json")["mice"]]
        return all(mask_path(self.run_dir, n).is_file() for n in names)

    def masks(self) -> None:
        from v1recon.jobs.masks import run_masks

        c = self.config
        for path, summary in run_masks(
            self.run_dir, self.data_dir, iterations=c.mask_iterations, seed=c.seed, device=c.device, overwrite=True
        ):
            self.log(f"mask {path.name}: {summary['update_pixels']} pixels updated, {summary['eval_pixels']} evaluated")

    def reconstruct(self, variant: str) -> None:
        """variant '' = the ensemble from recorded responses; 'oracle' = through the true model; 'predicted' = the
        ensemble from its own predicted responses (the published upper bound)."""
        from v1recon.jobs.reconstruct import run_reconstruction
        from v1recon.recon.reconstructor import ReconConfig

        c = self.config
        run_reconstruction(
            self.run_dir,
            self.data_dir,
            self._recon_dir(variant),
            tier=TIER,
            config=ReconConfig(method="fast", iterations=c.recon_iterations, seed=c.seed),
            trials=str(c.trials_per_mouse),
            one_repeat=True,
            device=c.device,
            oracle=variant == "oracle",
            from_predicted=variant == "predicted",
            overwrite=True,
        )

    def _recon_dir(self, variant: str) -> Path:
        return self.run_dir / "reconstructions" / (f"{TIER}-{variant}" if variant else TIER)

    def report(self) -> None:
        from v1recon.report import write_report

        path = write_report(self.run_dir, log=self.log)
        self.log(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")

    # -- driver ------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm.auto import tqdm

        self.run_dir.mkdir(parents=True, exist_ok=True)
        stages = self.stages()
        with tqdm(total=len(stages), desc="demo", unit="stage", position=0) as bar:
            for name, done, run in stages:
                bar.set_postfix_str(name)
                if done():
                    self.log(f"[demo] {name}: already done, reused")
                    self.state["stages"].setdefault(name, {})["reused"] = True
                else:
                    self.log(f"[demo] {name} ...")
                    start = time.perf_counter()
                    run()
                    seconds = time.perf_counter() - start
                    self.state["stages"][name] = {"seconds": round(seconds, 1), "reused": False}
                    self.log(f"[demo] {name}: {seconds:.0f} s")
                    write_json(self.state_path, self.state)
                bar.update(1)
        self.state["total_seconds"] = round(sum(s.get("seconds", 0.0) for s in self.state["stages"].values()), 1)
        write_json(self.state_path, self.state)
        return self.state
