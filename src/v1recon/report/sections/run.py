"""The run section: configuration, seeds, versions, timings per stage and hardware."""

from __future__ import annotations

from typing import Any

from v1recon.report import collect
from v1recon.report import html as H
from v1recon.report.context import Context, dumps

CONFIG_KEYS = ("preset", "ensemble", "seed", "n_folds", "test_fold", "data", "format")
VERSION_KEYS = ("v1recon", "python", "numpy", "torch")
HARDWARE_KEYS = ("platform", "cpu_count", "cuda", "device")
_TIME_WORDS = ("seconds", "_s", "elapsed", "duration", "wall")


def run_section(ctx: Context) -> str:
    info = ctx.info
    demo = collect.read_json_quiet(ctx.run_dir / "demo.json")
    parts = ["<h3>Configuration</h3>", _config(info, demo), "<h3>Timings per stage</h3>", _timings(ctx)]
    prov = info.get("provenance") if isinstance(info.get("provenance"), dict) else {}
    parts += ["<h3>Versions and hardware</h3>", _versions(prov, ctx)]
    parts.append(H.pre_json(dumps(info), "run.json (full file)"))
    return "".join(parts)


def _config(info: dict[str, Any], demo: dict[str, Any] | None = None) -> str:
    rows = [[k, info[k]] for k in CONFIG_KEYS if k in info]
    demo_config = (demo or {}).get("config")
    if isinstance(demo_config, dict):
        rows += [[f"demo.{k}", v] for k, v in demo_config.items() if not isinstance(v, (dict, list))]
    train = info.get("train_config")
    if isinstance(train, dict):
        rows += [[f"train_config.{k}", v if not isinstance(v, (dict, list)) else str(v)] for k, v in train.items()]
    splits = info.get("splits")
    if isinstance(splits, list) and splits:
        seeds = [s.get("seed") for s in splits if isinstance(s, dict)]
        rows.append(["model seeds", ", ".join(str(s) for s in seeds)])
    mice = info.get("mice")
    if isinstance(mice, list):
        for m in mice:
            if isinstance(m, dict):
                rows.append(
                    [
                        f"mouse {m.get('name')}",
                        f"{m.get('n_neurons')} neurons, {m.get('n_trials')} trials, identity {m.get('identity')}",
                    ]
                )
    if not rows:
        return H.note("run.json names no configuration.")
    rows = [[k, f"{v:g}" if isinstance(v, float) else v] for k, v in rows]  # settings as written: 0.05, 1e-05
    return H.table(["setting", "value"], rows, align_numbers=False)


def _seconds(content: Any) -> dict[str, float]:
    """Every number in a JSON whose key names a duration in seconds."""
    nums = collect.flat_numbers(content or {})
    return {
        k: v
        for k, v in nums.items()
        if any(w in k.split(".")[-1] for w in _TIME_WORDS) and not k.startswith("provenance")
    }


def _timings(ctx: Context) -> str:
    rows: list[list[object]] = []
    demo = collect.read_json_quiet(ctx.run_dir / "demo.json")
    stages = (demo or {}).get("stages")
    for stage, info in stages.items() if isinstance(stages, dict) else ():
        if isinstance(info, dict) and isinstance(info.get("seconds"), (int, float)):
            rows.append([f"demo: {stage}", "seconds", info["seconds"]])
    for key, value in _seconds(ctx.info.get("timings")).items():
        rows.append(["training (run.json)", key, value])
    from v1recon.report.sections.data import sim_folder

    folder = sim_folder(ctx)
    simulation = collect.read_json_quiet(folder / "simulation.json") if folder else None
    for key, value in _seconds({k: v for k, v in (simulation or {}).items() if k != "mice"}).items():
        rows.append(["simulation (simulation.json)", key, value])
    for m in ctx.models:
        extra = (m.sidecar or {}).get("extra", m.sidecar or {})
        if isinstance(extra, dict) and extra.get("train_seconds") is not None:
            rows.append([f"training {m.name}", "train_seconds", extra["train_seconds"]])
    for key, value in _seconds(ctx.evaluation).items():
        rows.append(["evaluation", key, value])
    for mouse, entry in ctx.masks.items():
        for key, value in _seconds(entry.get("sidecar")).items():
            rows.append([f"mask {mouse}", key, value])
    recon_total = sum(_seconds(t.sidecar).get("seconds", 0.0) for t in ctx.trials)
    if recon_total:
        rows.append(["reconstruction (sum over trials)", "seconds", recon_total])
    for folder, content in ctx.recon_summaries.items():
        for key, value in _seconds(content).items():
            rows.append([f"reconstruction {folder}", key, value])
    for a in collect.analyses(ctx.run_dir):
        if isinstance((a.sidecar or {}).get("seconds"), (int, float)):
            rows.append([f"analysis {a.name}", "seconds", a.sidecar["seconds"]])
    if not rows:
        return H.note("No timings recorded in the run's files.")
    return H.table(["stage", "quantity", "seconds"], rows, digits=1)


def _versions(prov: dict[str, Any], ctx) -> str:
    rows = [[k, prov[k]] for k in (*VERSION_KEYS, *HARDWARE_KEYS, "time_utc") if k in prov]
    for m in ctx.models[:1]:
        p = (m.sidecar or {}).get("provenance")
        if isinstance(p, dict):
            rows += [[f"{k} (training)", p[k]] for k in HARDWARE_KEYS if k in p and k not in prov]
    if not rows:
        return H.note("run.json records no provenance (versions, hardware).")
    return H.table(["item", "value"], rows, align_numbers=False)
