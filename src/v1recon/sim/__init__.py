"""The in-silico mouse: a ground-truth V1 model, its stimuli and behaviour, and a simulator that writes
Sensorium-layout recordings with the true model stored beside them."""

from v1recon.sim.behaviour import EyeAndBody, behaviour_trace, random_eye_and_body
from v1recon.sim.cascade import CascadeV1
from v1recon.sim.families import DEFAULT_FAMILY, FAMILY_NAMES
from v1recon.sim.model import (
    CELL_TYPES,
    DEG_PER_PX,
    SCREEN_DEG,
    GroundTruthV1,
    deg_to_px,
    load_truth,
    truth_path,
    truth_summary,
)
from v1recon.sim.observation import CorrelationMeter, sample_responses
from v1recon.sim.simulate import PRESETS, Preset, simulate
from v1recon.sim.stimuli import drifting_grating, gaussian_noise_movie, natural_movie, pink_noise_texture

__all__ = [
    "CELL_TYPES",
    "DEFAULT_FAMILY",
    "DEG_PER_PX",
    "FAMILY_NAMES",
    "PRESETS",
    "SCREEN_DEG",
    "CascadeV1",
    "CorrelationMeter",
    "EyeAndBody",
    "GroundTruthV1",
    "Preset",
    "behaviour_trace",
    "deg_to_px",
    "drifting_grating",
    "gaussian_noise_movie",
    "load_truth",
    "natural_movie",
    "pink_noise_texture",
    "random_eye_and_body",
    "sample_responses",
    "simulate",
    "truth_path",
    "truth_summary",
]
