"""In-silico receptive-field mapping with sparse noise, through any encoder.

The published stimulus: one pixel set to 255 (ON) or 0 (OFF) on a grey (127.5) screen, 15 frames of grey before,
15 frames of the pixel, 15 frames of grey after (45 frames). Per neuron and probe the relative response change

    (stim - pre) / pre      stim: mean prediction over the 15 stimulus frames,
                            pre: mean prediction over the same frames of an all-grey clip

is thresholded at 0.1 (smaller changes count as 0), the ON and OFF maps are summed, smoothed with a Gaussian of
sigma 2 px and scaled to a maximum of 1. Taking "pre" from an all-grey clip equals the pre-stimulus response of
a causal encoder at rest and avoids the look-ahead of windowed encoders (a DwiseNeuro window sees frames after
the ones it predicts). Behaviour is held constant (the recording's median behaviour and pupil centre).

Besides the published map, `signed` = (ON - OFF) / 2 relative changes (unthresholded, same smoothing) estimates the
linear RF, which the invertible linear baseline uses. With `stride` s only every s-th row and column is probed
(s^2 times fewer probes); each probe's value then stands for its s x s block before smoothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.experiments import results
from v1recon.experiments.registry import RFMapping
from v1recon.report.figures import pyplot

PHASE_FRAMES = RFMapping.phase  # frames before / during / after the pixel
GREY = 127.5
THRESHOLD = 0.1  # relative response change below which a probe counts as no response
SMOOTH_SIGMA = 2.0  # pixels
POLARITIES = (255.0, 0.0)  # ON, OFF


@dataclass
class RFMapping:
    """RF maps of N neurons from sparse-noise probes; maps are (N, 36, 64) float32."""

    rf: np.ndarray  # published RF: thresholded ON + OFF relative change, smoothed, max 1 (0 where unresponsive)
    signed: np.ndarray  # (ON - OFF) / 2 relative change, smoothed: a linear RF estimate (units: relative change)
    on: np.ndarray  # raw relative change to ON probes (probe grid upsampled to the frame)
    off: np.ndarray  # raw relative change to OFF probes
    baseline: np.ndarray  # (N,) mean response to grey
    stride: int
    behaviour: np.ndarray  # (4,) the constant behaviour used
    n_probes: int
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def mapped(self) -> np.ndarray:
        """(N,) bool: neurons with at least one probe above threshold."""
        return self.rf.reshape(len(self.rf), -1).max(1) > 0


def probe_positions(stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the probed pixels: every `stride`-th row and column, offset to centre the grid."""
    if stride < 1:
        raise V1ReconError(f"probe stride must be at least 1 pixel, got {stride}.")
    rows = np.arange((stride - 1) // 2, FRAME_SHAPE[0], stride)
    cols = np.arange((stride - 1) // 2, FRAME_SHAPE[1], stride)
    return rows, cols


def probe_clips(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, phase: int = PHASE_FRAMES) -> torch.Tensor:
    """Sparse-noise clips (B, 3 * phase, 36, 64): grey, then pixel (rows[b], cols[b]) at values[b], then grey."""
    clips = torch.full((len(rows), 3 * phase, *FRAME_SHAPE), GREY)
    b = torch.arange(len(rows))
    for t in range(phase, 2 * phase):
        clips[b, t, torch.as_tensor(rows), torch.as_tensor(cols)] = torch.as_tensor(values, dtype=torch.float32)
    return clips


def _stim_response(encoder, clips: torch.Tensor, behaviour: torch.Tensor, phase: int) -> np.ndarray:
    """Mean prediction over the stimulus frames, (B, N) float64.

    A windowed encoder is asked only for the 2 windows ending at the clip's last two frames, which together
    predict every frame of the last 31 once (the stimulus frames included), instead of all 15 windows.
    """
    from v1recon.recon.objective import predict_windows, windowing

    beh = behaviour[None, :, None].expand(len(clips), 4, clips.shape[1]).contiguous()
    n = clips.shape[1]
    g = windowing(encoder)
    with torch.no_grad():
        if g is not None and n - g.step >= g.reach and n - 1 - g.reach <= phase:
            pred = predict_windows(encoder, clips, beh, [n - g.step + j for j in range(g.step)])
        else:
            pred = encoder(clips, beh)
    return pred[:, :, phase : 2 * phase].double().mean(-1).cpu().numpy()


def _upsample(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, R, C) values at probe (rows, cols) -> (N, 36, 64), each pixel taking its nearest probe's value."""
    near_r = np.abs(np.arange(FRAME_SHAPE[0])[:, None] - rows[None]).argmin(1)
    near_c = np.abs(np.arange(FRAME_SHAPE[1])[:, None] - cols[None]).argmin(1)
    return grid[:, near_r][:, :, near_c]


def _smooth(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of each (36, 64) map of (N, 36, 64), sigma in pixels, edges reflected."""
    return gaussian_filter(maps, sigma=(0, sigma, sigma), mode="reflect") if sigma > 0 else maps


def published_rf(on: np.ndarray, off: np.ndarray, threshold=THRESHOLD, sigma=SMOOTH_SIGMA) -> np.ndarray:
    """Thresholded ON + OFF relative changes (N, 36, 64), smoothed, each map scaled to max 1 (all-zero stays 0)."""
    rf = _smooth(np.where(on >= threshold, on, 0.0) + np.where(off >= threshold, off, 0.0), sigma)
    peak = rf.reshape(len(rf), -1).max(1)
    return (rf / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)


def map_receptive_fields(
    encoder,
    behaviour: np.ndarray,
    stride: int = 1,
    batch_size: int = 32,
    phase: int = PHASE_FRAMES,
    threshold: float = THRESHOLD,
    sigma: float = SMOOTH_SIGMA,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> RFMapping:
    """Map the RFs of every neuron of `encoder` (Encoder contract) with ON and OFF single-pixel probes.

    behaviour: (4,) constant behaviour (pupil dilation, running speed, pupil x, pupil y). Probes run in batches
    of `batch_size` clips of 3 * phase frames; `progress(k)` is called with the number of probes just done.
    """
    behaviour = np.asarray(behaviour, np.float32).reshape(-1)
    if behaviour.shape != (4,):
        raise V1ReconError(f"RF mapping needs one behaviour vector of 4 values, got shape {behaviour.shape}.")
    if batch_size < 1:
        raise V1ReconError(f"RF mapping batch size must be at least 1, got {batch_size}.")
    started = time.perf_counter()
    device = torch.device(device)
    beh = torch.as_tensor(behaviour, device=device)
    rows, cols = probe_positions(stride)
    rr, cc = (g.ravel() for g in np.meshgrid(rows, cols, indexing="ij"))
    pr = np.concatenate([rr, rr])
    pc = np.concatenate([cc, cc])
    pv = np.repeat(np.asarray(POLARITIES), len(rr))
    grey = probe_clips(pr[:1], pc[:1], np.array([GREY]), phase).to(device)
    base = _stim_response(encoder, grey, beh, phase)[0]  # (N,)
    stim = np.empty((len(pr), len(base)))
    for s in range(0, len(pr), batch_size):
        sl = slice(s, s + batch_size)
        stim[sl] = _stim_response(encoder, probe_clips(pr[sl], pc[sl], pv[sl], phase).to(device), beh, phase)
        if progress is not None:
            progress(len(pr[sl]))
    # relative change; a neuron silent on grey gets a floor so that the ratio stays finite
    floor = max(1e-6, 1e-3 * float(np.abs(base).mean()))
    rel = (stim - base[None]) / np.maximum(base, floor)[None]  # (probes, N)
    grids = rel.T.reshape(len(base), 2, len(rows), len(cols))
    on, off = _upsample(grids[:, 0], rows, cols), _upsample(grids[:, 1], rows, cols)
    rf = published_rf(on, off, threshold, sigma)
    signed = _smooth((on - off) / 2, sigma).astype(np.float32)
    return RFMapping(
        rf=rf,
        signed=signed,
        on=on.astype(np.float32),
        off=off.astype(np.float32),
        baseline=base.astype(np.float32),
        stride=stride,
        behaviour=behaviour,
        n_probes=len(pr),
        seconds=time.perf_counter() - started,
        info={"phase_frames": phase, "threshold": threshold, "sigma_px": sigma, "batch_size": batch_size},
    )


def population_rf(rf: np.ndarray, mapped: np.ndarray | None = None) -> np.ndarray:
    """Mean of the max-normalised RFs (N, 36, 64) of the mapped neurons, scaled to max 1 -> (36, 64)."""
    use = rf if mapped is None else rf[mapped]
    if len(use) == 0:
        return np.zeros(FRAME_SHAPE, np.float32)
    pop = use.mean(0)
    return (pop / pop.max() if pop.max() > 0 else pop).astype(np.float32)


def rf_centres(rf: np.ndarray, level: float = 0.5) -> np.ndarray:
    """(N, 2) centres (row, col) in pixels: centroid of each map's values >= level * its max (NaN if empty)."""
    rows, cols = np.mgrid[0 : FRAME_SHAPE[0], 0 : FRAME_SHAPE[1]]
    peak = rf.reshape(len(rf), -1).max(1)[:, None, None]
    w = np.where((rf >= level * peak) & (peak > 0), rf, 0.0)
    total = w.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(w * rows).sum((1, 2)) / total, (w * cols).sum((1, 2)) / total], axis=1)


def map_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per map between (N, H, W) stacks (or two (H, W) maps -> 0-d); 0 where either map is flat."""
    a = np.asarray(a, np.float64).reshape(-1, a.shape[-2] * a.shape[-1])
    b = np.asarray(b, np.float64).reshape(-1, b.shape[-2] * b.shape[-1])
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    r = np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1.0), 0.0)
    return r if r.size > 1 else r.reshape(())


def compare_with_mask(pop_rf: np.ndarray, alpha: np.ndarray, update_mask: np.ndarray, eval_mask: np.ndarray) -> dict:
    """How the population RF (36, 64) agrees with an alpha mask: correlation and overlap of the half-max region."""
    region = pop_rf >= 0.5

    def iou(m):
        union = (region | m).sum()
        return float((region & m).sum() / union) if union else 0.0

    return {
        "correlation_with_alpha": float(map_correlation(pop_rf, np.clip(alpha, 0, None))),
        "iou_halfmax_vs_update_mask": iou(update_mask),
        "iou_halfmax_vs_eval_mask": iou(eval_mask),
        "rf_mass_in_update_mask": float(pop_rf[update_mask].sum() / max(pop_rf.sum(), 1e-12)),
        "rf_mass_in_eval_mask": float(pop_rf[eval_mask].sum() / max(pop_rf.sum(), 1e-12)),
        "halfmax_pixels": int(region.sum()),
    }


def gaze_shift_px(truth, behaviour: np.ndarray) -> np.ndarray:
    """(row, col) pixels by which the in-silico mouse's RFs move on the screen at a constant pupil centre."""
    from v1recon.sim import DEG_PER_PX

    c = truth.config
    dx_deg = (float(behaviour[2]) - c["pupil_ref_x"]) * c["gaze_deg_per_cam_px"]
    dy_deg = (float(behaviour[3]) - c["pupil_ref_y"]) * c["gaze_deg_per_cam_px"]
    return np.array([dy_deg / DEG_PER_PX[0], dx_deg / DEG_PER_PX[1]])


def shift_maps(maps: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Move (N, 36, 64) maps by (row, col) pixels (bilinear, zero outside)."""
    from scipy.ndimage import shift as nd_shift

    if not np.any(np.abs(shift) > 1e-3):
        return maps
    return nd_shift(maps, (0, float(shift[0]), float(shift[1])), order=1, mode="constant", cval=0.0)


def compare_with_truth(mapping: RFMapping, truth) -> dict:
    """Mapped vs true RFs of the in-silico mouse (truth: GroundTruthV1), at the gaze of the mapping's behaviour.

    rf_vs_envelope: r of the published (unsigned) map with the true Gaussian envelope per neuron;
    signed_vs_gabor: r of the signed map with the true even Gabor (the linear RF of simple cells);
    centre_error_px: distance between the mapped centre (half-max centroid) and the true RF centre.
    """
    shift = gaze_shift_px(truth, mapping.behaviour)
    envelope = shift_maps(truth.rf_envelopes(), shift)
    gabor = shift_maps(truth.receptive_fields(), shift)
    r_env = map_correlation(mapping.rf, envelope)
    r_gabor = map_correlation(mapping.signed, gabor)
    err = np.linalg.norm(rf_centres(mapping.rf) - (truth.rf_centres_px() + shift[None]), axis=1)
    mapped = mapping.mapped
    types = truth.cell_types()
    pop_true = shift_maps(truth.population_rf()[None], shift)[0]
    per_type = {
        t: {
            "n": int((types == t).sum()),
            "rf_vs_envelope": float(np.median(r_env[types == t])) if (types == t).any() else None,
            "signed_vs_gabor": float(np.median(r_gabor[types == t])) if (types == t).any() else None,
        }
        for t in np.unique(types)
    }
    return {
        "arrays": {"rf_vs_envelope": r_env, "signed_vs_gabor": r_gabor, "centre_error_px": err},
        "summary": {
            "gaze_shift_px": shift.tolist(),
            "mapped_fraction": float(mapped.mean()),
            "rf_vs_envelope_median": float(np.median(r_env[mapped])) if mapped.any() else None,
            "signed_vs_gabor_median": float(np.median(r_gabor)),
            "centre_error_px_median": float(np.nanmedian(err[mapped])) if mapped.any() else None,
            "centre_error_px_within_2": float(np.mean(err[mapped] <= 2.0)) if mapped.any() else None,
            "population_rf_vs_true": float(map_correlation(population_rf(mapping.rf, mapped), pop_true)),
            "per_cell_type": per_type,
        },
    }


# -- the analysis (v1recon analyse rf-mapping) ------------------------------------------------------------------------
NAME = "rf-mapping"
EXAMPLE_NEURONS = 6


def _map(encoder, behaviour, stride, batch_size, device, desc, progress, phase) -> RFMapping:
    from tqdm.auto import tqdm

    n = 2 * len(probe_positions(stride)[0]) * len(probe_positions(stride)[1])
    with tqdm(total=n, desc=desc, unit="probe", disable=not progress, leave=False) as bar:
        return map_receptive_fields(encoder, behaviour, stride, batch_size, phase, device=device, progress=bar.update)


def run(setup, cfg, recon=None, settings=None):
    """Map the RFs of the setup's mouse through its ensemble (and, in silico, through the true model); compare
    with the alpha mask and the true RFs (cfg: registry.RFMapping; no reconstruction, so `recon` is unused).
    Returns (arrays, summary) for `results.write_analysis`."""
    from v1recon.experiments import common

    stride, batch_size, phase = cfg.stride, cfg.batch_size, cfg.phase
    progress = settings is None or settings.progress
    from v1recon.models import EnsembleEncoder

    behaviour = common.constant_behaviour([setup.recording], 1)[:, 0]
    encoder = setup.encoders[0] if len(setup.encoders) == 1 else EnsembleEncoder(setup.encoders)
    mapping = _map(encoder, behaviour, stride, batch_size, setup.device, "RF mapping", progress, phase)
    pop = population_rf(mapping.rf, mapping.mapped)
    arrays = {
        "rf": mapping.rf.astype(np.float16),
        "signed": mapping.signed,
        "on": mapping.on.astype(np.float16),
        "off": mapping.off.astype(np.float16),
        "baseline": mapping.baseline,
        "mapped": mapping.mapped,
        "population_rf": pop,
        "centres_px": rf_centres(mapping.rf).astype(np.float32),
        "behaviour": mapping.behaviour,
    }
    rows = [["ensemble", mapping.n_probes, round(mapping.seconds, 1), float(mapping.mapped.mean())]]
    stats: dict = {"ensemble": {"seconds": mapping.seconds, "probes": mapping.n_probes}}
    findings = [
        f"{int(mapping.mapped.sum())} of {len(mapping.rf)} neurons respond to a single pixel by >= {THRESHOLD:g} "
        f"of their grey response ({mapping.n_probes} probes in {mapping.seconds:.0f} s)."
    ]
    if setup.alpha is not None:
        arrays["alpha"] = setup.alpha.astype(np.float32)
        arrays["eval_mask"], arrays["update_mask"] = setup.eval_mask, setup.update_mask
        stats["mask"] = compare_with_mask(pop, setup.alpha, setup.update_mask, setup.eval_mask)
        findings.append(
            f"population RF vs alpha mask: r = {stats['mask']['correlation_with_alpha']:.2f}, "
            f"{100 * stats['mask']['rf_mass_in_update_mask']:.0f}% of the RF mass inside the update mask, "
            f"IoU of the half-maximum region with the update mask {stats['mask']['iou_halfmax_vs_update_mask']:.2f}."
        )
    if setup.truth is not None:
        truth = setup.truth.cpu()
        cmp = compare_with_truth(mapping, truth)
        stats["truth"] = cmp["summary"]
        arrays.update({f"truth_{k}": v.astype(np.float32) for k, v in cmp["arrays"].items()})
        arrays["true_population_rf"] = shift_maps(truth.population_rf()[None], gaze_shift_px(truth, behaviour))[0]
        arrays["true_envelopes"] = shift_maps(truth.rf_envelopes(), gaze_shift_px(truth, behaviour)).astype(np.float16)
        findings.append(f"ensemble vs true RFs: {_truth_line(cmp['summary'])}.")
        if cfg.true_model:
            tm = _map(
                setup.truth, behaviour, stride, batch_size, setup.device, "RF mapping (true model)", progress, phase
            )
            tcmp = compare_with_truth(tm, truth)
            stats["true_model_mapping"] = {**tcmp["summary"], "seconds": tm.seconds}
            arrays["true_model_rf"] = tm.rf.astype(np.float16)
            arrays["true_model_signed"] = tm.signed
            arrays["true_model_centre_error_px"] = tcmp["arrays"]["centre_error_px"].astype(np.float32)
            rows.append(["true model", tm.n_probes, round(tm.seconds, 1), float(tm.mapped.mean())])
            findings.append(
                "the same probes through the true model (the mapping method's own limit): "
                f"{_truth_line(tcmp['summary'])}."
            )
    headers = ["encoder", "probes", "seconds", "mapped fraction"]
    for label, key in (("r with true envelope (median)", "rf_vs_envelope_median"),
                       ("centre error px (median)", "centre_error_px_median")):  # fmt: skip
        if "truth" in stats:
            headers.append(label)
            rows[0].append(stats["truth"][key])
            if len(rows) > 1:
                rows[1].append(stats["true_model_mapping"][key])
    summary = {
        "title": "In-silico receptive-field mapping",
        "description": (
            f"Sparse noise as published: one ON (255) or OFF (0) pixel on grey, {phase} frames before, during and "
            f"after, every {stride}. pixel ({mapping.n_probes} probes), constant behaviour (the mouse's mean). "
            f"RF = (stim - pre) / pre with pre the response to grey, thresholded at {THRESHOLD:g}, ON + OFF, "
            f"smoothed sigma {SMOOTH_SIGMA:g} px, max-normalised. Population RF: mean of the normalised RFs."
        ),
        "table": {"headers": headers, "rows": rows},
        "findings": findings,
        "statistics": stats,
    }
    return arrays, summary


def _truth_line(s: dict) -> str:
    """One sentence of a truth comparison summary (no mapped neuron: says so)."""
    if s["rf_vs_envelope_median"] is None:
        return "no neuron mapped, nothing to compare"
    return (
        f"median r {s['rf_vs_envelope_median']:.2f} with the true envelope, median centre error "
        f"{s['centre_error_px_median']:.1f} px ({100 * s['centre_error_px_within_2']:.0f}% within 2 px), "
        f"population RF r {s['population_rf_vs_true']:.2f}"
    )


def _examples(arrays: dict) -> np.ndarray:
    """Indices of example neurons: mapped ones spread over the range of RF-centre positions."""
    mapped = np.flatnonzero(arrays["mapped"])
    if len(mapped) == 0:
        return mapped
    cols = arrays["centres_px"][mapped, 1]
    order = mapped[np.argsort(np.nan_to_num(cols))]
    return order[np.linspace(0, len(order) - 1, min(EXAMPLE_NEURONS, len(order))).astype(int)]


def draw(path, arrays: dict, summary: dict) -> None:
    """Population RF (with the mask outlined), true population RF, example neuron RFs, centre-error histogram."""

    plt = pyplot()
    has_truth = "truth_centre_error_px" in arrays
    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(3, EXAMPLE_NEURONS, height_ratios=[1.3, 0.8, 0.8])
    ax = fig.add_subplot(grid[0, : EXAMPLE_NEURONS // 3])
    title = "population RF"
    pop = arrays["population_rf"]
    if not arrays["mapped"].any():  # nothing above threshold: show where the sub-threshold changes are
        pop = np.maximum(arrays["on"].astype(np.float32), arrays["off"].astype(np.float32)).clip(0).mean(0)
        pop, title = pop / max(float(pop.max()), 1e-12), "mean response change (all below threshold)"
    ax.imshow(pop, cmap="magma", vmin=0, vmax=1)
    if "update_mask" in arrays:
        ax.contour(arrays["update_mask"].astype(float), levels=[0.5], colors="cyan", linewidths=1)
        ax.contour(arrays["eval_mask"].astype(float), levels=[0.5], colors="lime", linewidths=1)
        title += "\n(update mask cyan, evaluation mask green)"
    ax.set_title(title, fontsize=9)
    ax.set(xticks=[], yticks=[])
    if has_truth:
        ax = fig.add_subplot(grid[0, EXAMPLE_NEURONS // 3 : 2 * EXAMPLE_NEURONS // 3])
        ax.imshow(arrays["true_population_rf"], cmap="magma", vmin=0, vmax=1)
        ax.set(title="true population RF", xticks=[], yticks=[])
        ax = fig.add_subplot(grid[0, 2 * EXAMPLE_NEURONS // 3 :])
        err = arrays["truth_centre_error_px"][arrays["mapped"]]
        bins = np.linspace(0, max(8.0, float(np.nanpercentile(err, 99)) if err.size else 8.0), 30)
        ax.hist(err[np.isfinite(err)], bins=bins, alpha=0.7, label="ensemble")
        if "true_model_centre_error_px" in arrays:
            tm = arrays["true_model_centre_error_px"]
            ax.hist(tm[np.isfinite(tm)], bins=bins, alpha=0.5, label="true model")
        ax.set(xlabel="RF centre error (px)", ylabel="neurons", title="mapped vs true RF centre")
        ax.legend(fontsize=8)
    for j, n in enumerate(_examples(arrays)):
        ax = fig.add_subplot(grid[1, j])
        ax.imshow(arrays["rf"][n].astype(np.float32), cmap="magma", vmin=0, vmax=1)
        ax.set(title=f"neuron {n}", xticks=[], yticks=[])
        if j == 0:
            ax.set_ylabel("mapped RF")
        ax = fig.add_subplot(grid[2, j])
        if has_truth:
            ax.imshow(arrays["true_envelopes"][n].astype(np.float32), cmap="magma", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel("true envelope")
        else:
            lim = float(np.abs(arrays["signed"][n]).max()) or 1.0
            ax.imshow(arrays["signed"][n], cmap="RdBu_r", vmin=-lim, vmax=lim)
            if j == 0:
                ax.set_ylabel("ON - OFF")
        ax.set(xticks=[], yticks=[])
    fig.suptitle(summary["title"])
    results.save_figure(fig, path)
