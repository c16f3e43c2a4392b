"""Movie reconstruction by optimising the input of encoders: the `fast` method, the published `paper` method,
streaming reconstruction, transparency (alpha) masks and ensembling."""

from v1recon.recon.ensemble import ENSEMBLE_SIGMA, average_reconstructions, smooth_movie
from v1recon.recon.fast import FastSettings, reconstruct_fast
from v1recon.recon.paper import paper_step, reconstruct_paper, subbatch_starts
from v1recon.recon.reconstructor import ReconConfig, Reconstruction, masked_correlation, reconstruct_trials
from v1recon.recon.streaming import StreamingReconstructor, StreamSettings

__all__ = [
    "ENSEMBLE_SIGMA",
    "FastSettings",
    "ReconConfig",
    "Reconstruction",
    "StreamSettings",
    "StreamingReconstructor",
    "average_reconstructions",
    "masked_correlation",
    "paper_step",
    "reconstruct_fast",
    "reconstruct_paper",
    "reconstruct_trials",
    "smooth_movie",
    "subbatch_starts",
]
