"""Helpers shared by the report sections."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from v1recon.report import html as H


def mean_sd_n(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample SD (None for fewer than 2 values) and count of the finite values."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return None, None, 0
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None), int(v.size)


def mean_sd_text(values: Iterable[float | None], digits: int = 3, with_n: bool = True) -> str:
    """'0.412 ± 0.051 (n = 8)' (without the count when `with_n` is False); '—' when there is nothing."""
    mean, sd, n = mean_sd_n(values)
    if mean is None:
        return "\u2014"
    spread = f" \u00b1 {sd:.{digits}f}" if sd is not None else ""
    return f"{mean:.{digits}f}{spread}" + (f" (n = {n})" if with_n else "")


def missing(what: str, command: str) -> str:
    """The note shown where a stage has not produced its files yet."""
    return H.note(f"{what}: run {command}.")


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or not np.isfinite(reference) or reference == 0:
        return None
    return value / reference


def pretty(name: str) -> str:
    """metric_name -> 'metric name' for table headers."""
    return name.replace("_", " ")
