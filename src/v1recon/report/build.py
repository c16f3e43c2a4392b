"""Assemble RUN/report.html from whatever a run folder holds; every section renders what exists and names the
command that produces what is missing."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from v1recon import __version__
from v1recon.io import atomic_path
from v1recon.report import collect
from v1recon.report import html as H

REPORT_FILE = "report.html"


@dataclass
class Context:
    """Everything the sections share: the run folder, its run.json, and lazily read parts."""

    run_dir: Path
    info: dict[str, Any]
    compute: bool = True  # allow short computations (true-model RFs, example predictions) beyond reading files
    log: Callable[[str], None] = field(default=lambda msg: None)

    @cached_property
    def data_dir(self) -> Path | None:
        return collect.data_folder(self.run_dir, self.info)

    @cached_property
    def mouse_names(self) -> list[str]:
        names = collect.run_mice(self.info)
        return names or sorted({t.mouse for t in self.trials} | set(self.masks))

    @cached_property
    def models(self) -> list[collect.ModelFiles]:
        return collect.models(self.run_dir)

    @cached_property
    def masks(self) -> dict[str, dict[str, Any]]:
        return collect.masks(self.run_dir)

    @cached_property
    def evaluation(self) -> dict[str, Any] | None:
        return collect.read_json_quiet(self.run_dir / "evaluation" / "encoders.json")

    @cached_property
    def _reconstructions(self):
        return collect.reconstructions(self.run_dir)

    @property
    def trials(self) -> list[collect.TrialFiles]:
        return self._reconstructions[0]

    @property
    def recon_summaries(self) -> dict[str, dict[str, Any]]:
        return self._reconstructions[1]

    @cached_property
    def recordings(self) -> dict[str, Any]:
        """mouse name -> v1recon.data.Recording, for the mice whose folders can be opened."""
        from v1recon.data import Recording

        out = {}
        for name, path in self.mouse_paths().items():
            try:
                out[name] = Recording(path)
            except Exception as err:  # noqa: BLE001 - a broken folder only costs its figures
                self.log(f"report: could not open recording {path}: {err}")
        return out

    def mouse_paths(self) -> dict[str, Path]:
        """mouse -> recording folder: run.json's mice entries, else <data folder>/<mouse>."""
        paths = {}
        mice = self.info.get("mice")
        for m in mice if isinstance(mice, list) else []:
            if isinstance(m, dict) and m.get("name") and m.get("path") and Path(m["path"]).is_dir():
                paths[str(m["name"])] = Path(m["path"])
        for name in self.mouse_names:
            if name not in paths and self.data_dir is not None and (self.data_dir / name).is_dir():
                paths[name] = self.data_dir / name
        return paths


def _guarded(title: str, render: Callable[[Context], str], ctx: Context) -> str:
    """Render a section body; a failure shows as a red note instead of breaking the whole report."""
    try:
        return render(ctx)
    except Exception as err:  # noqa: BLE001 - the report must survive any half-written stage
        ctx.log(f"report: section {title!r} failed: {err}\n{traceback.format_exc()}")
        return H.note(f"This section could not be rendered: {type(err).__name__}: {err}", error=True)


def render_report(run_dir: str | Path, compute: bool = True, log: Callable[[str], None] | None = None) -> str:
    """The report of a run folder as one HTML string (see `write_report`)."""
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
    run_dir: str | Path, out: str | Path | None = None, compute: bool = True, log: Callable[[str], None] | None = None
) -> Path:
    """Write the self-contained report of `run_dir` (default RUN/report.html) atomically; returns its path."""
    page = render_report(run_dir, compute=compute, log=log)
    out = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def dumps(value: Any) -> str:
    """Pretty JSON for the raw-file views."""
    return json.dumps(value, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))


def comparison_values(run_dir: str | Path) -> dict[str, float]:
    """This run's values for the published quantities (keys of v1recon.report.published.PUBLISHED)."""
    from v1recon.report.sections import run_values

    run_dir, info = collect.open_run(run_dir)
    return run_values(Context(run_dir, info, compute=False))
