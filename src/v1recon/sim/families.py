"""The model families of the in-silico mouse, by name (`v1recon simulate --family`) and by the kind stored with
a saved truth (`load_truth` picks the class from it)."""

from __future__ import annotations

from pathlib import Path

from v1recon.errors import V1ReconError

FAMILY_NAMES = ("energy", "cascade")
DEFAULT_FAMILY = "energy"


def family_class(name: str):
    """The ground-truth model class of a family name ('energy': GroundTruthV1, 'cascade': CascadeV1)."""
    from v1recon.sim.cascade import CascadeV1
    from v1recon.sim.model import GroundTruthV1

    classes = {"energy": GroundTruthV1, "cascade": CascadeV1}
    if name not in classes:
        raise V1ReconError(f"unknown model family {name!r} (known: {', '.join(FAMILY_NAMES)}).")
    return classes[name]


def truth_class(kind: str | None, where: str | Path):
    """The ground-truth model class of a saved description's "kind" (read from the JSON file `where`)."""
    classes = {family_class(name).kind: family_class(name) for name in FAMILY_NAMES}
    if kind not in classes:
        raise V1ReconError(f"{where}: not a ground-truth model description (kind {kind!r}).")
    return classes[kind]
