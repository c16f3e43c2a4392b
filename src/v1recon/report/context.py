"""What every section of the report shares: the run folder and its lazily read parts (`Context`), and `dumps`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from v1recon.report import collect


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


def dumps(value: Any) -> str:
    """Pretty JSON for the raw-file views."""
    return json.dumps(value, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))
