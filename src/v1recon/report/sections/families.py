"""The model-families section: encoder presets on both in-silico families (the families.json that
benchmarks/families.py writes), shown when the report is given one with `--families`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from v1recon.errors import V1ReconError
from v1recon.report import html as H

REQUIRED = ("family", "preset", "ens_truth")  # keys every row of families.json has


def read_families(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a families.json, checked; a V1ReconError naming the file when it is not one."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        raise V1ReconError(
            f"{path}: no such file (--families takes the families.json of benchmarks/families.py)."
        ) from None
    except (OSError, ValueError) as err:
        raise V1ReconError(f"{path}: not a readable JSON file ({err}).") from None
    if not isinstance(rows, list) or not rows:
        raise V1ReconError(f"{path}: a families.json holds a non-empty list of rows, one per family and preset.")
    for k, row in enumerate(rows):
        lacking = [key for key in REQUIRED if not isinstance(row, dict) or key not in row]
        if lacking:
            raise V1ReconError(f"{path}: row {k} lacks {', '.join(lacking)}.")
    return rows


def families_section(rows: list[dict[str, Any]]) -> str:
    """One table per family: preset -> ratio to the truth (ensemble, best member, per cell type) and the
    reconstruction's ratio to the oracle."""
    parts = []
    for family in dict.fromkeys(r["family"] for r in rows):
        sub = [r for r in rows if r["family"] == family]
        types = list(dict.fromkeys(t for r in sub for t in r.get("by_type", {})))
        headers = ["preset", "models", "train min", "truth r", "ensemble / truth", "best member / truth"]
        headers += [f"{t} / truth" for t in types] + ["recon r", "oracle r", "recon / oracle"]
        body = [
            [
                r["preset"],
                r.get("models"),
                _minutes(r.get("train_s")),
                r.get("truth_r"),
                r["ens_truth"],
                r.get("best_truth"),
            ]
            + [r.get("by_type", {}).get(t) for t in types]
            + [r.get("recon_ensemble"), r.get("recon_oracle"), r.get("recon_ratio")]
            for r in sub
        ]
        digits = [3, 0, 1] + [3] * (len(headers) - 3)
        caption = (
            f"Family {family}: each preset's single-trial correlation over the true model's on the held-out trials "
            "(mean of mice; per cell type: the ensemble on those neurons), and the masked video correlation of "
            "fast reconstructions through the ensemble and through the true model (the oracle) from the same "
            "single-trial responses. Train min: wall minutes of the whole ensemble, its data-driven start included."
        )
        parts.append(H.table(headers, body, caption=caption, digits=digits))
    return "".join(parts)


def _minutes(seconds) -> float | None:
    return None if seconds is None else float(seconds) / 60
