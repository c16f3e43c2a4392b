"""The streaming section: every trial streamed by `v1recon stream` (RUN/streams/<name>/<mouse>/trial-<id>.*) beside
the offline reconstruction of the same trial: delay, latency, real-time factor and video correlation, and the movie
truth | streamed | offline | error."""

from __future__ import annotations

from v1recon import EVAL_START_FRAME
from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.sections.common import missing


def streams_section(ctx) -> str:
    streamed = collect.reconstructions(ctx.run_dir, "streams")[0]
    if not streamed:
        return missing("No streamed trials yet", "v1recon stream RUN --trial ID")
    return _table(streamed) + '<div class="grid">' + "".join(_card(t) for t in streamed) + "</div>"


def _get(side: dict, *path):
    for key in path:
        side = side.get(key) if isinstance(side, dict) else None
    return side


def _table(streamed: list[collect.TrialFiles]) -> str:
    headers = ["mouse", "trial", "encoders", "chunk", "window (delay, ms)", "steps", "response delay (ms)",
               "push ms (median / p95)", "real-time factor (wall / CPU)", "streamed r", "offline r",
               "fraction of offline", "streamed vs offline r"]  # fmt: skip
    rows = []
    for t in streamed:
        side = t.sidecar or {}
        latency = (_get(side, "cost", "latency_median_ms"), _get(side, "cost", "latency_p95_ms"))
        factors = (_get(side, "cost", "realtime_factor"), _get(side, "cost", "realtime_factor_cpu"))
        rows.append([
            t.mouse, t.trial_id, _get(side, "condition", "encoders"), _get(side, "config", "chunk"),
            _get(side, "delay", "ms"), _get(side, "config", "stream", "steps"),
            _get(side, "delay", "response_delay_ms"),
            " / ".join(f"{v:.0f}" for v in latency) if None not in latency else None,
            " / ".join(f"{v:.2f}" for v in factors) if None not in factors else None,
            _get(side, "metrics", "video_correlation"),
            _get(side, "offline", "offline_video_correlation"), _get(side, "offline", "fraction_of_offline"),
            _get(side, "offline", "streamed_vs_offline_correlation"),
        ])  # fmt: skip
    caption = (
        "Each trial replayed chunk by chunk through the streaming reconstructor (v1recon.recon.streaming). Window: "
        "frames a frame stays free, the delay of every output frame; response delay: the lag by which 90 % of a "
        "frame's effect on the predicted responses is seen, measured from the encoders. Push ms: wall time of one "
        "push; real-time factor: seconds of compute per second of recording on the machine that streamed (above 1: "
        "slower than real time), by the wall clock and by the process's CPU time (on a shared machine the CPU time "
        f"is what an idle core would need). r: video correlation with the true movie, frames {EVAL_START_FRAME} on, "
        "inside the evaluation mask; offline: the fast method on the whole recorded trial (the fraction is left out "
        "when the offline r is below 0.1)."
    )
    digits = [0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 2, 3]
    return H.table(headers, rows, caption=caption, digits=digits)


def _card(t: collect.TrialFiles) -> str:
    from v1recon.metrics.video import frame_correlations

    title = f"{t.mouse} \u00b7 trial {t.trial_id} \u00b7 streamed"
    parts = [f'<div class="trial"><h4>{H.esc(title)}</h4>']
    if t.mp4:
        parts.append(H.video(t.mp4.read_bytes(), f"trial {t.trial_id}: truth, streamed, offline, error"))
    arrays = collect.load_npz_arrays(t.npz)
    truth, mask = arrays.get("truth"), arrays.get("eval_mask")
    curves = {k: frame_correlations(arrays[k], truth, mask) for k in ("reconstruction", "offline") if k in arrays}
    if truth is not None and curves:
        curves = {("streamed" if k == "reconstruction" else k): v for k, v in curves.items()}
        parts.append(H.image(figures.frame_correlation_plot(curves), f"per-frame correlation of trial {t.trial_id}"))
    parts.append("</div>")
    return "".join(parts)
