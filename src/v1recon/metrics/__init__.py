"""Measures of encoder quality (Sensorium definitions) and of reconstruction quality (inside the evaluation mask)."""

from v1recon.metrics.encoder import (
    FeveScores,
    NeuronScores,
    correlation_to_average,
    encoder_metrics,
    feve,
    oracle_correlation,
    pearson_per_row,
    single_trial_correlation,
)
from v1recon.metrics.video import (
    frame_correlation,
    frame_correlations,
    full_screen_correlation,
    motion_energy,
    motion_energy_correlation,
    psnr,
    response_consistency,
    rmse,
    ssim_global,
    ssim_windowed,
    video_correlation,
    video_metrics,
)

__all__ = [
    "FeveScores",
    "NeuronScores",
    "correlation_to_average",
    "encoder_metrics",
    "feve",
    "frame_correlation",
    "frame_correlations",
    "full_screen_correlation",
    "motion_energy",
    "motion_energy_correlation",
    "oracle_correlation",
    "pearson_per_row",
    "psnr",
    "response_consistency",
    "rmse",
    "single_trial_correlation",
    "ssim_global",
    "ssim_windowed",
    "video_correlation",
    "video_metrics",
]
