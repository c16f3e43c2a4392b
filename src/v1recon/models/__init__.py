"""Encoding models: DwiseNeuro (published architecture and checkpoints), a fast factorised model, a per-neuron
subunit model, ensembles."""

from v1recon.models.base import Encoder, MultiMouseModel, WindowGeometry, check_encoder_inputs, networks
from v1recon.models.checkpoint import export_published_checkpoint, load_published_checkpoint
from v1recon.models.dwiseneuro import DwiseNeuro
from v1recon.models.ensemble import BoundEncoder, EnsembleEncoder, NeuronSubset
from v1recon.models.factorised import Fast3d
from v1recon.models.presets import PRESETS, build_architecture, build_model
from v1recon.models.store import load_model, save_model
from v1recon.models.subunit import Subunit

__all__ = [
    "PRESETS",
    "BoundEncoder",
    "DwiseNeuro",
    "Encoder",
    "EnsembleEncoder",
    "Fast3d",
    "MultiMouseModel",
    "NeuronSubset",
    "Subunit",
    "WindowGeometry",
    "build_architecture",
    "build_model",
    "check_encoder_inputs",
    "export_published_checkpoint",
    "load_model",
    "load_published_checkpoint",
    "networks",
    "save_model",
]
