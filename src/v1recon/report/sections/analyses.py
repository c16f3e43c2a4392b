"""The analyses section (RUN/analyses/<name>/ written by `v1recon analyse`): each analysis' figure, table,
expected effects and statistics, and the published quantities they measure."""

from __future__ import annotations

import numpy as np

from v1recon.report import collect
from v1recon.report import html as H
from v1recon.report.context import Context, dumps
from v1recon.report.published import PUBLISHED_BY_KEY

ORDER = ("upper-bounds", "masks", "ensemble-size", "population", "resolution-noise", "gratings")


def analyses_section(ctx: Context) -> str:
    found = collect.analyses(ctx.run_dir)
    if not found:
        return H.note(
            "No analyses yet: run v1recon analyse NAME RUN (upper-bounds, masks, ensemble-size, population, "
            "resolution-noise, gratings)."
        )
    found.sort(key=lambda a: (ORDER.index(a.name) if a.name in ORDER else len(ORDER), a.name))
    return "".join(_analysis(a) for a in found)


def _analysis(a: collect.AnalysisFiles) -> str:
    summary = a.summary
    parts = [f"<h3>{H.esc(summary.get('title', a.name))}</h3>"]
    if summary.get("description"):
        parts.append(f"<p>{H.esc(summary['description'])}</p>")
    if a.figure:
        parts.append(H.image(a.figure, f"figure of the {a.name} analysis", f"analyses/{a.name}/figure.png"))
    table = summary.get("table")
    if isinstance(table, dict) and table.get("headers") and table.get("rows"):
        parts.append(H.table([str(h) for h in table["headers"]], table["rows"]))
    findings = summary.get("findings")
    if isinstance(findings, list) and findings:
        parts.append("<ul>" + "".join(f"<li>{H.esc(f)}</li>" for f in findings) + "</ul>")
    expected = summary.get("expected")
    if isinstance(expected, list) and expected:
        rows = [[e.get("effect"), H.Raw(_holds(e.get("holds"))), e.get("why")] for e in expected if isinstance(e, dict)]
        parts.append(H.table(["expected effect", "holds", "evidence"], rows))
    if summary.get("statistics"):
        parts.append(H.pre_json(dumps(summary["statistics"]), "statistics"))
    seconds = (a.sidecar or {}).get("seconds")
    if isinstance(seconds, (int, float)):
        parts.append(f'<p class="muted">{H.esc(f"{seconds:.0f} s")}</p>')
    return "".join(parts)


def _holds(holds) -> str:
    if holds is True:
        return '<span class="tag run">yes</span>'
    if holds is False:
        return '<span class="tag bad">no</span>'
    return "\u2014"


def analysis_values(run_dir) -> dict[str, tuple[float, str]]:
    """Published quantities that the analyses measured (means over trials) -> (value, 'analyses/<name>')."""
    out: dict[str, tuple[float, str]] = {}
    for a in collect.analyses(run_dir):
        if a.name == "population":
            arrays = a.arrays()
            fractions, r = arrays.get("fractions"), arrays.get("r")
            if fractions is not None and r is not None and r.ndim == 2 and r.shape[1] == len(fractions):
                for f, column in zip(fractions, r.T, strict=True):
                    key = f"video_corr_population_{100 * float(f):g}"
                    if key in PUBLISHED_BY_KEY and np.isfinite(column).any():
                        out[key] = (float(np.nanmean(column)), "analyses/population")
        elif a.name == "masks":
            _put(out, "video_corr_no_mask", a.table_value("none", "r mean"), a.name)
            _put(out, "video_corr_strict_mask", a.table_value("strict", "r mean"), a.name)
        elif a.name == "upper-bounds":
            _put(out, "video_corr_upper_bound", a.table_value("predicted", "r mean"), a.name)
        elif a.name == "ensemble-size":
            rows = (a.summary.get("table") or {}).get("rows") or []
            sizes = [row[0] for row in rows if isinstance(row, list) and row and isinstance(row[0], (int, float))]
            if sizes:
                value = a.table_value(str(max(sizes)), "r (average only)")
                _put(out, "video_corr_no_smoothing", value, a.name)
    return out


def _put(out: dict[str, tuple[float, str]], key: str, value: float | None, name: str) -> None:
    if value is not None:
        out[key] = (value, f"analyses/{name}")
