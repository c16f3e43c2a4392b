"""Assemble RUN/report.html from whatever a run folder holds; every section renders what exists and names the
command that produces what is missing."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from v1recon import __version__
from v1recon.errors import V1ReconError
from v1recon.io import atomic_path
from v1recon.report import collect
from v1recon.report import html as H
from v1recon.report.context import Context

REPORT_FILE = "report.html"


def _guarded(title: str, render: Callable[[Context], str], ctx: Context) -> str:
    """Render a section body; a failure shows as a red note instead of breaking the whole report."""
    try:
        return render(ctx)
    except Exception as err:  # noqa: BLE001 - the report must survive any half-written stage
        ctx.log(f"report: section {title!r} failed: {err}\n{traceback.format_exc()}")
        return H.note(f"This section could not be rendered: {type(err).__name__}: {err}", error=True)


def render_report(
    run_dir: str | Path, compute: bool = True, log: Callable[[str], None] | None = None, families=None
) -> str:
    """The report of a run folder as one HTML string (see `write_report`); `families`: the rows of a families.json
    (v1recon.report.sections.families) for the preset x family section."""
    from v1recon.report import sections

    run_dir, info = collect.open_run(run_dir)
    ctx = Context(run_dir, info, compute=compute, log=log or (lambda msg: print(msg, file=sys.stderr)))
    parts = [
        ("summary", "Summary", "At a glance", sections.summary_section),
        ("data", "Data", "The data", sections.data_section),
        ("encoders", "Encoders", "The encoders", sections.encoders_section),
        ("reconstructions", "Reconstructions", "The reconstructions", sections.reconstructions_section),
        ("streams", "Streaming", "Streamed and offline reconstructions", sections.streams_section),
        ("analyses", "Analyses", "The analyses", sections.analyses_section),
        ("paper", "Paper vs this run", "The published numbers beside this run", sections.paper_section),
        ("run", "Run", "The run", sections.run_section),
    ]
    if families:  # beside the analyses: what holds across model families
        section = (
            "families",
            "Families",
            "Encoders on both in-silico families",
            lambda _: sections.families_section(families),
        )
        parts.insert(-2, section)
    rendered = []
    for anchor, menu, title, render in parts:
        start = time.perf_counter()
        body = _guarded(title, render, ctx)
        ctx.log(f"report: {menu.lower()} section in {time.perf_counter() - start:.1f} s")
        rendered.append((anchor, menu, H.section(anchor, title, body)))
    subtitle = [
        f"Run folder: {run_dir.resolve()}",
        f"Mice: {', '.join(ctx.mouse_names) or 'none listed'} \u00b7 models: {len(ctx.models)} \u00b7 "
        f"reconstructed trials: {len(ctx.trials)} in {len({t.set_name for t in ctx.trials})} set(s)",
    ]
    footer = f"v1recon {__version__} \u00b7 report written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    return H.page("Movie reconstruction from mouse V1: run report", subtitle, rendered, footer)


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    compute: bool = True,
    log: Callable[[str], None] | None = None,
    families: str | Path | None = None,
) -> Path:
    """Write the self-contained report of `run_dir` (default RUN/report.html) atomically; returns its path.
    `families`: a families.json of benchmarks/families.py, shown as its own section."""
    from v1recon.report.sections.families import read_families

    out = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    if out.suffix.lower() not in (".html", ".htm") or out.is_dir():
        raise V1ReconError(f"{out}: a report is written to an .html file; name one (no other file is replaced).")
    rows = read_families(families) if families is not None else None
    page = render_report(run_dir, compute=compute, log=log, families=rows)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def comparison_values(run_dir: str | Path) -> dict[str, float]:
    """This run's values for the published quantities (keys of v1recon.report.published.PUBLISHED)."""
    from v1recon.report.sections import run_values

    run_dir, info = collect.open_run(run_dir)
    return run_values(Context(run_dir, info, compute=False))
