"""The data section: the mice (trials per tier, behaviour), receptive fields and masks over the screen, and the
simulation's own figure and calibration when the mice are in silico."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE
from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.context import Context
from v1recon.report.sections.common import missing, pretty

TIER_ORDER = ("train", "oracle", "live_test", "final_test", "live_bonus", "final_bonus", "none")


def data_section(ctx: Context) -> str:
    parts = [_data_folder_line(ctx)]
    if not ctx.recordings:
        parts.append(
            H.note(
                "The recordings named in run.json could not be opened here; trial counts and behaviour are not shown."
            )
        )
    else:
        parts.append(_tier_table(ctx.recordings))
    parts.append(_simulation_summary(ctx))
    for name in ctx.mouse_names:
        parts.append(f"<h3>Mouse {H.esc(name)}</h3>")
        parts.append(_mouse_screen(ctx, name))
        if name in ctx.recordings:
            parts.append(_behaviour(ctx.recordings[name]))
        parts.append(_simulated_mouse(ctx, name))
    return "".join(parts)


def _data_folder_line(ctx: Context) -> str:
    data = collect.first_key(ctx.info, "data", "data_path", "data_dir")
    if ctx.data_dir is None:
        return H.note(f"Data folder {data!r} named in run.json is not reachable from here.")
    return f"<p>Recordings: <code>{H.esc(ctx.data_dir)}</code></p>"


def _tier_table(recordings: dict[str, Any]) -> str:
    """Trials per tier (with recorded responses) and neuron counts, one row per mouse."""
    tiers = [t for t in TIER_ORDER if any(i.tier == t for r in recordings.values() for i in r.trials)]
    rows = []
    for name, rec in recordings.items():
        row: list[object] = [name, rec.n_neurons]
        for tier in tiers:
            infos = [i for i in rec.trials if i.tier == tier]
            with_resp = sum(i.has_responses for i in infos)
            row.append(f"{len(infos)}" + (f" ({with_resp})" if with_resp != len(infos) else ""))
        lengths = [i.length for i in rec.trials]
        row.append(f"{min(lengths) / FRAME_RATE_HZ:.1f}\u2013{max(lengths) / FRAME_RATE_HZ:.1f}" if lengths else "")
        rows.append(row)
    headers = ["mouse", "neurons", *tiers, "trial length (s)"]
    caption = "Trials per tier; in brackets how many hold recorded responses when not all do (30 Hz, 36\u00d764 px)."
    return H.table(headers, rows, caption=caption)


def _truth_rfs(ctx: Context, name: str) -> np.ndarray | None:
    """RF maps (N, 36, 64) of the in-silico mouse's true model (Gaussian envelopes when the model offers them),
    when it exists and computing is allowed."""
    if not ctx.compute or name not in ctx.mouse_paths():
        return None
    try:
        from v1recon.sim import load_truth
    except ImportError:
        return None
    truth = load_truth(ctx.mouse_paths()[name])
    if truth is None:
        return None
    return np.asarray(truth.rf_envelopes() if hasattr(truth, "rf_envelopes") else truth.receptive_fields())


def _mouse_screen(ctx: Context, name: str) -> str:
    """Mask and (in silico) RF mosaic and population RF over the screen."""
    mask_entry = ctx.masks.get(name)
    rfs = _truth_rfs(ctx, name)
    mask = _screen_mask(mask_entry["array"]) if mask_entry and mask_entry["array"] is not None else None
    out = []
    if mask is None and mask_entry and mask_entry.get("png"):
        out.append(H.image(mask_entry["png"], f"mask of {name}", f"Alpha mask of {name} (as written by v1recon mask)."))
    if mask is None and not mask_entry:
        out.append(missing(f"No mask for {name} yet", "v1recon mask RUN"))
    if mask is None and rfs is None:
        return "".join(out)
    if mask is None:
        caption = (
            "Left: half-maximum contours of the true receptive fields of the in-silico mouse; right: their summed "
            "magnitude (the population receptive field)."
        )
        out.append(H.image(figures.mask_figure(None, name, rfs), f"receptive fields of {name}", caption))
        return "".join(out)
    caption = (
        "The alpha mask (population receptive field learned through the encoders); white border: pixels "
        "updated during reconstruction (m \u2265 0.5), red: pixels evaluated (m \u2265 1)."
    )
    if rfs is not None:
        caption = (
            "Left: "
            + caption[4:]
            + (
                " Middle: half-maximum contours of the true receptive fields of the in-silico mouse; right: their "
                "summed magnitude (the population receptive field) with the mask borders."
            )
        )
    out.append(H.image(figures.mask_figure(mask, name, rfs), f"mask and receptive fields of {name}", caption))
    if float(np.nanmax(mask)) < 1.0:
        out.append(
            H.note(
                f"The evaluation mask of {name} is empty (no pixel reaches m \u2265 1, maximum "
                f"{float(np.nanmax(mask)):.2f}); reconstructions then fall back to the update mask or to all pixels. "
                "A longer mask training (the published 1000 iterations) usually fixes this."
            )
        )
    if mask_entry and mask_entry.get("sidecar"):
        out.append(_mask_numbers(mask_entry["sidecar"]))
    return "".join(out)


def _screen_mask(mask: np.ndarray) -> np.ndarray:
    """Masks kept on the 64x64 model canvas are cut to the 36x64 screen (rows 14..49, as DwiseNeuro pads)."""
    if mask.shape == (64, 64):
        top = (64 - FRAME_SHAPE[0]) // 2
        return mask[top : top + FRAME_SHAPE[0]]
    return mask


def _mask_numbers(sidecar: dict[str, Any]) -> str:
    nums = {k: v for k, v in collect.flat_numbers(sidecar).items() if not k.startswith("provenance")}
    keep = {
        k: v for k, v in nums.items() if any(w in k for w in ("fraction", "pixels", "area", "iteration", "seconds"))
    }
    if not keep:
        return ""
    return H.table(["mask measure", "value"], sorted(keep.items()), caption="From the mask's sidecar.")


def _behaviour(rec) -> str:
    """Behaviour of one example trial and the recording's per-channel statistics."""
    ids = rec.trial_ids(tier="oracle") or rec.trial_ids()
    if not ids:
        return ""
    trial = rec.trial(ids[0])
    png = figures.behaviour_figure(trial.behaviour, f"{rec.name}: behaviour during trial {ids[0]} ({trial.tier})")
    return H.image(png, f"behaviour of {rec.name}", "Pupil dilation, running speed and pupil centre over one trial.")


def sim_folder(ctx: Context) -> Path | None:
    """The folder holding the mouse folders (and, for in-silico mice, simulation.json and the truth files)."""
    if ctx.data_dir is None:
        return None
    return ctx.data_dir.parent if (ctx.data_dir / "meta").is_dir() else ctx.data_dir


def _simulation_summary(ctx: Context) -> str:
    """What `v1recon simulate` recorded about the whole simulation (OUT/simulation.json)."""
    folder = sim_folder(ctx)
    content = collect.read_json_quiet(folder / "simulation.json") if folder else None
    if content is None:
        return ""
    cells = {k: content[k] for k in ("preset", "family", "seed") if k in content}
    config = content.get("preset_config")
    if isinstance(config, dict):
        cells.update({k: v for k, v in config.items() if not isinstance(v, (dict, list))})
    if "seconds" in content:
        cells["simulation time (s)"] = content["seconds"]
    intro = "<p>The mice of this run are in-silico mice: their ground truth is known (v1recon simulate).</p>"
    table = H.table(
        [pretty(k) for k in cells], [list(cells.values())], caption="Simulation (simulation.json).", digits=1
    )
    return intro + table


def _simulated_mouse(ctx: Context, name: str) -> str:
    """The simulator's figure of a mouse (OUT/<mouse>.png) and its noise calibration (OUT/<mouse>.truth.json)."""
    folder = sim_folder(ctx)
    if folder is None:
        return ""
    parts = []
    png = folder / f"{name}.png"
    if png.is_file():
        parts.append(
            H.image(
                png.read_bytes(),
                f"simulation figure of {name}",
                f"{png.name}: the in-silico mouse as simulated (written by v1recon simulate).",
            )
        )
    truth = collect.read_json_quiet(folder / f"{name}.truth.json")
    calibration = truth.get("calibration") if truth else None
    if isinstance(calibration, dict):
        nums = collect.flat_numbers(calibration)
        caption = (
            f"{name}.truth.json, calibration: how well single-trial responses follow the noise-free rates "
            "(correlation r; the best any encoder can do)."
        )
        parts.append(H.table(["calibration", "value"], list(nums.items()), caption=caption))
    return "".join(parts)
