"""Read what a RUN folder holds, tolerating stages that have not run yet.

Layout (every part optional except run.json):
    RUN/run.json                                   training configuration, mice, data path, timings, versions
    RUN/models/model-<k>.json, model-<k>.log.csv   checkpoint sidecar, per-epoch log
    RUN/evaluation/encoders.json                   encoder metrics per mouse, per model, ensemble, true model
    RUN/masks/<mouse>.npz (+ .json, .png)          alpha mask per mouse
    RUN/reconstructions/<tier>/<mouse>/trial-<id>.npz (+ .json, .mp4, .gif, .png), summary.json files
    RUN/streams/<name>/<mouse>/trial-<id>.npz (+ .json, .mp4, .gif, .png)   streamed trials (v1recon stream)
The recordings (and, for an in-silico mouse, its simulation figure and calibration JSON) lie in the data folder
named in run.json.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from v1recon.errors import V1ReconError
from v1recon.runs import RUN_FILE

_TRIAL_RE = re.compile(r"^trial-(\d+)$")
_MODEL_RE = re.compile(r"^model-(\d+)$")


def read_json_quiet(path: Path) -> dict[str, Any] | None:
    """JSON content, or None when the file is missing or unreadable (the report then says so)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else {"value": value}


def open_run(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """Check that `run_dir` is a run folder and return (path, run.json content)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise V1ReconError(f"{run_dir}: not a run folder (no such folder); create one with v1recon train.")
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise V1ReconError(f"{run_dir}: not a run folder (no {RUN_FILE}); create one with v1recon train.")
    try:
        info = json.loads(run_file.read_text())
    except ValueError as err:
        raise V1ReconError(f"{run_file}: not valid JSON ({err}).") from err
    if not isinstance(info, dict):
        raise V1ReconError(f"{run_file}: expected a JSON object.")
    return run_dir, info


def first_key(mapping: dict[str, Any] | None, *names: str, default: Any = None) -> Any:
    """The value of the first of `names` present in `mapping` (also looking one level down in 'config')."""
    if not isinstance(mapping, dict):
        return default
    for name in names:
        if name in mapping and mapping[name] is not None:
            return mapping[name]
    config = mapping.get("config")
    if isinstance(config, dict):
        return first_key(config, *names, default=default)
    return default


def data_folder(run_dir: Path, info: dict[str, Any]) -> Path | None:
    """The recordings folder named in run.json (relative paths are taken from the run folder), if it exists."""
    value = first_key(info, "data", "data_path", "data_dir", "recordings")
    if isinstance(value, dict):
        value = first_key(value, "path", "folder")
    if isinstance(value, list) and value:
        value = value[0] if len(value) == 1 else str(Path(value[0]).parent)
    if not isinstance(value, str):
        return None
    path = Path(value)
    for candidate in (path, run_dir / path):
        if candidate.is_dir():
            return candidate
    return None


def run_mice(info: dict[str, Any]) -> list[str]:
    """Mouse names as run.json lists them (strings, or dicts with a 'name')."""
    mice = first_key(info, "mice", "mouse_names", default=[])
    names = []
    for m in mice if isinstance(mice, list) else list(mice):
        names.append(str(m.get("name")) if isinstance(m, dict) else str(m))
    return names


# -- models --------------------------------------------------------------------------------------------------------
@dataclass
class ModelFiles:
    name: str
    index: int
    sidecar: dict[str, Any] | None
    log: dict[str, np.ndarray] = field(default_factory=dict)


def read_log_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a per-epoch CSV log as float arrays (non-numeric columns dropped, blanks as NaN)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    columns: dict[str, np.ndarray] = {}
    for name in rows[0].keys() if rows else ():
        try:
            columns[name] = np.array([float(r[name]) if r[name] not in ("", None) else np.nan for r in rows])
        except ValueError:
            continue
    return columns


def models(run_dir: Path) -> list[ModelFiles]:
    """Every model-<k> of RUN/models with its sidecar and log, by k."""
    folder = run_dir / "models"
    stems: dict[int, str] = {}
    for path in folder.glob("model-*") if folder.is_dir() else ():
        stem = path.name.split(".")[0]
        match = _MODEL_RE.match(stem)
        if match:
            stems[int(match.group(1))] = stem
    out = []
    for k, stem in sorted(stems.items()):
        sidecar = read_json_quiet(folder / f"{stem}.json")
        out.append(ModelFiles(stem, k, sidecar, read_log_csv(folder / f"{stem}.log.csv")))
    return out


# -- encoder evaluation --------------------------------------------------------------------------------------------
ENCODER_METRICS = (
    ("single_trial_correlation", ("single_trial_correlation", "single_trial_corr", "single_trial", "corr")),
    ("correlation_to_average", ("correlation_to_average", "corr_to_average", "correlation_to_avg", "corr_to_avg")),
    ("feve", ("feve", "FEVE", "fraction_explainable_variance_explained")),
)
TRUTH_NAMES = ("truth", "true_model", "ground_truth", "ceiling", "oracle")


def _metric_value(value: Any) -> float | None:
    """A metric stored as a number or as {'mean': ...}."""
    if isinstance(value, dict):
        value = first_key(value, "mean", "value")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return None


def _as_metric_set(node: Any) -> dict[str, float] | None:
    if not isinstance(node, dict):
        return None
    found = {}
    for name, aliases in ENCODER_METRICS:
        for alias in aliases:
            if alias in node and _metric_value(node[alias]) is not None:
                found[name] = _metric_value(node[alias])
                break
    return found or None


def encoder_rows(evaluation: dict[str, Any]) -> list[tuple[str, str, dict[str, float]]]:
    """(mouse, encoder, metrics) for every metric set found in encoders.json.

    Accepts nested layouts such as {mouse: {encoder: metrics}} or {"mice": {mouse: {"models": {...},
    "ensemble": {...}, "truth": {...}}}}: a metric set is a dict holding any of the ENCODER_METRICS names;
    its mouse is the first path element that is not a grouping word, its encoder the last.
    """
    rows: list[tuple[str, str, dict[str, float]]] = []
    grouping = {"mice", "mouse", "models", "encoders", "metrics", "results", "per_mouse", "per_model"}

    def walk(node: Any, path: list[str]) -> None:
        if not isinstance(node, dict):
            return
        metrics = _as_metric_set(node)
        names = [p for p in path if p not in grouping]
        if metrics and names:
            mouse = names[0] if len(names) > 1 else "all"
            rows.append((mouse, names[-1], metrics))
            return
        for key, value in node.items():
            if key not in ("config", "provenance", "ratio", "ratios"):
                walk(value, [*path, str(key)])

    walk(evaluation, [])
    return rows


def is_truth(encoder: str) -> bool:
    return any(encoder.lower().startswith(t) for t in TRUTH_NAMES)


def is_ensemble(encoder: str) -> bool:
    return encoder.lower().startswith("ensemble")


# -- masks ---------------------------------------------------------------------------------------------------------
def load_mask_array(path: Path) -> np.ndarray | None:
    """The mask map of a masks/<mouse>.npz: key 'mask' or 'alpha' or the first 2-D array."""
    try:
        with np.load(path) as npz:
            for key in ("mask", "alpha", "alpha_mask", "m"):
                if key in npz.files and npz[key].ndim == 2:
                    return np.asarray(npz[key], dtype=float)
            for key in npz.files:
                if npz[key].ndim == 2:
                    return np.asarray(npz[key], dtype=float)
    except (OSError, ValueError):
        return None
    return None


def masks(run_dir: Path) -> dict[str, dict[str, Any]]:
    """mouse -> {'array': (H, W) or None, 'sidecar': dict or None, 'png': bytes or None}."""
    folder = run_dir / "masks"
    out: dict[str, dict[str, Any]] = {}
    for npz in sorted(folder.glob("*.npz")) if folder.is_dir() else ():
        png = npz.with_suffix(".png")
        out[npz.stem] = {
            "array": load_mask_array(npz),
            "sidecar": read_json_quiet(npz.with_suffix(".json")),
            "png": png.read_bytes() if png.is_file() else None,
        }
    return out


# -- reconstructions -----------------------------------------------------------------------------------------------
@dataclass
class TrialFiles:
    """One reconstructed trial: files beside each other, `sidecar` the parsed JSON.

    `set_name` is the folder (relative to RUN/reconstructions) that holds the mouse folders of one reconstruction
    job, e.g. "final_test" or "final_test-oracle"; `tier` comes from the sidecar when it says so.
    """

    set_name: str
    tier: str
    mouse: str
    trial_id: int
    npz: Path | None = None
    sidecar: dict[str, Any] | None = None
    mp4: Path | None = None
    gif: Path | None = None
    png: Path | None = None

    @property
    def config(self) -> dict[str, Any]:
        config = (self.sidecar or {}).get("config")
        return config if isinstance(config, dict) else {}

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies the reconstructed movie across jobs: (tier, mouse, trial)."""
        return (self.tier, self.mouse, self.trial_id)


def reconstructions(
    run_dir: Path, folder: str = "reconstructions"
) -> tuple[list[TrialFiles], dict[str, dict[str, Any]]]:
    """Every trial-<id>.* under RUN/<folder> (reconstructions; streams for `v1recon stream`) and every summary.json
    (relative folder -> content)."""
    root = run_dir / folder
    trials: dict[Path, TrialFiles] = {}
    summaries: dict[str, dict[str, Any]] = {}
    if not root.is_dir():
        return [], summaries
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or not path.is_file():
            continue  # temporary folders of a job still running
        if path.name == "summary.json":
            content = read_json_quiet(path)
            if content is not None:
                summaries[str(path.parent.relative_to(root))] = content
            continue
        match = _TRIAL_RE.match(path.name.split(".")[0])
        if not match:
            continue
        stem = path.parent / path.name.split(".")[0]
        if stem not in trials:
            parts = path.parent.relative_to(root).parts
            set_name = "/".join(parts[:-1]) or "."
            tier = parts[-2] if len(parts) >= 2 else "?"
            trials[stem] = TrialFiles(set_name, tier, parts[-1] if parts else "?", int(match.group(1)))
        entry, suffix = trials[stem], path.name[len(stem.name) :]
        if suffix == ".npz":
            entry.npz = path
        elif suffix == ".json":
            entry.sidecar = read_json_quiet(path)
            tier = entry.config.get("tier") or first_key((entry.sidecar or {}).get("data"), "tier")
            if isinstance(tier, str):
                entry.tier = tier
        elif suffix in (".mp4", ".gif", ".png"):
            setattr(entry, suffix[1:], path)
    return sorted(trials.values(), key=lambda t: (t.set_name, t.mouse, t.trial_id)), summaries


def sidecar_metrics(sidecar: dict[str, Any] | None) -> dict[str, Any]:
    """The metrics block of a reconstruction sidecar (key 'metrics'), or {}."""
    metrics = first_key(sidecar, "metrics", default={})
    return metrics if isinstance(metrics, dict) else {}


def flat_numbers(node: Any, prefix: str = "") -> dict[str, float]:
    """Every finite number of a nested dict as 'a.b.c' -> value (whole numbers stay int)."""
    out: dict[str, float] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(flat_numbers(value, f"{prefix}{key}."))
    elif isinstance(node, int) and not isinstance(node, bool):
        out[prefix[:-1]] = node
    elif isinstance(node, float) and np.isfinite(node):
        out[prefix[:-1]] = node
    return out


def load_npz_arrays(path: Path | None) -> dict[str, np.ndarray]:
    if path is None:
        return {}
    try:
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError):
        return {}


# -- analyses ------------------------------------------------------------------------------------------------------
@dataclass
class AnalysisFiles:
    """RUN/analyses/<name>/: result.json (sidecar with 'summary'), result.npz, figure.png."""

    name: str
    folder: Path
    sidecar: dict[str, Any] | None

    @property
    def summary(self) -> dict[str, Any]:
        summary = (self.sidecar or {}).get("summary")
        return summary if isinstance(summary, dict) else {}

    @property
    def figure(self) -> bytes | None:
        path = self.folder / "figure.png"
        return path.read_bytes() if path.is_file() else None

    def arrays(self) -> dict[str, np.ndarray]:
        return load_npz_arrays(self.folder / "result.npz")

    def table_value(self, row_label: str, column_prefix: str) -> float | None:
        """The number in the summary table's row whose first cell is `row_label`, column whose header starts
        with `column_prefix`."""
        table = self.summary.get("table")
        if not isinstance(table, dict):
            return None
        headers = [str(h) for h in table.get("headers", [])]
        column = next((i for i, h in enumerate(headers) if h.startswith(column_prefix)), None)
        for row in table.get("rows", []) if column is not None else ():
            if isinstance(row, list) and row and str(row[0]) == row_label and column < len(row):
                value = row[column]
                return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None
        return None


def analyses(run_dir: Path) -> list[AnalysisFiles]:
    """Every finished analysis under RUN/analyses (folders holding result.json), by name."""
    folder = run_dir / "analyses"
    out = []
    for sub in sorted(folder.iterdir()) if folder.is_dir() else ():
        if sub.is_dir() and not sub.name.startswith(".") and (sub / "result.json").is_file():
            out.append(AnalysisFiles(sub.name, sub, read_json_quiet(sub / "result.json")))
    return out
