"""Architecture presets and the one function that builds a model from a preset name or a saved config."""

from __future__ import annotations

from v1recon.errors import V1ReconError
from v1recon.models.base import MultiMouseModel
from v1recon.models.dwiseneuro import PAPER_KWARGS, DwiseNeuro
from v1recon.models.factorised import FAST3D_KWARGS, Fast3d
from v1recon.models.subunit import SUBUNIT_KWARGS, Subunit

ARCHITECTURES: dict[str, type[MultiMouseModel]] = {"dwiseneuro": DwiseNeuro, "fast3d": Fast3d, "subunit": Subunit}

# preset -> (architecture, keyword arguments); configs are plain data so they round-trip through JSON.
PRESETS: dict[str, tuple[str, dict]] = {
    # DwiseNeuro exactly as published (Sensorium 2023 winner, stage one).
    "paper": ("dwiseneuro", dict(PAPER_KWARGS)),
    # The same family scaled down to train on a laptop CPU in minutes.
    "small": (
        "dwiseneuro",
        dict(
            PAPER_KWARGS,
            core_features=(16, 16, 16, 16, 32, 32, 32, 64, 64),
            expansion_ratio=3,
            se_reduce_ratio=8,
            cortex_features=(256, 512, 1024),
        ),
    ),
    # Factorised causal 3-D convolutions + Gaussian readout: the fastest to train and to reconstruct through.
    "fast3d": ("fast3d", dict(FAST3D_KWARGS)),
    # Each neuron's own quadrature pair of Gabor-basis filters at its receptive field (a V1 energy model): places
    # fine-grained neurons precisely; starts from RF centres and filters estimated from the data (~1.5 min per
    # mouse, once per run).
    "subunit": ("subunit", dict(SUBUNIT_KWARGS)),
}


def build_architecture(architecture: str, neuron_counts: list[int], kwargs: dict | None = None) -> MultiMouseModel:
    """Build a model of a named architecture ('dwiseneuro', 'fast3d' or 'subunit') for the given neurons per mouse."""
    if architecture not in ARCHITECTURES:
        raise V1ReconError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}.")
    kwargs = {k: v for k, v in (kwargs or {}).items() if k not in ("readout_outputs", "neuron_counts")}
    try:
        return ARCHITECTURES[architecture](list(neuron_counts), **kwargs)
    except (TypeError, ValueError) as err:
        raise V1ReconError(f"cannot build a {architecture} model: {err}.") from err


def build_model(preset: str, neuron_counts: list[int], **overrides) -> MultiMouseModel:
    """Build a preset ('paper', 'small', 'fast3d', 'subunit') for mice with `neuron_counts` neurons; overrides
    replace kwargs."""
    if preset not in PRESETS:
        raise V1ReconError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}.")
    if not neuron_counts or any(int(n) < 1 for n in neuron_counts):
        raise V1ReconError(f"neuron counts must be positive, one per mouse, got {list(neuron_counts)}.")
    architecture, kwargs = PRESETS[preset]
    model = build_architecture(architecture, neuron_counts, {**kwargs, **overrides})
    model.preset = preset
    return model
