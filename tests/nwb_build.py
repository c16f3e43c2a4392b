"""Small NWB files built with pynwb alone (independent of v1recon's own NWB code), for the import and export tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

START = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def new_file(identifier: str = "test-session"):
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description="two-photon imaging of V1 during natural movies",
        identifier=identifier,
        session_start_time=START,
        experimenter=["Doe, Jane"],
        institution="Test Institute",
        subject=Subject(subject_id="m1", species="Mus musculus", sex="F", age="P90D"),
    )


def add_rois(nwbfile, n_rois: int, rng, iscell=None):
    """An imaging plane (2 um pixels) with n_rois square pixel-mask ROIs; returns (region, centres (n, 2) px)."""
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    device = nwbfile.create_device(name="microscope")
    channel = OpticalChannel(name="green", description="GCaMP emission", emission_lambda=510.0)
    plane = nwbfile.create_imaging_plane(
        name="plane0", optical_channel=channel, description="layer 2/3", device=device, excitation_lambda=920.0,
        indicator="GCaMP6s", location="VISp", imaging_rate=15.0, grid_spacing=[2e-6, 2e-6], grid_spacing_unit="meters",
    )  # fmt: skip
    module = nwbfile.create_processing_module(name="ophys", description="segmentation and traces")
    segmentation = ImageSegmentation()
    module.add(segmentation)
    table = segmentation.create_plane_segmentation(name="PlaneSegmentation", description="ROIs", imaging_plane=plane)
    if iscell is not None:
        table.add_column(name="iscell", description="1 for a cell")
    centres = rng.uniform(5, 100, (n_rois, 2)).round()
    for k, (x, y) in enumerate(centres):
        pixels = [(int(x) + dx, int(y) + dy, 1.0) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        table.add_roi(pixel_mask=pixels, **({} if iscell is None else {"iscell": int(iscell[k])}))
    region = table.create_roi_table_region(region=list(range(n_rois)), description="all ROIs")
    return module, region, centres


def add_responses(module, region, data, timestamps, container="Deconvolved", series="Deconvolved"):
    from pynwb.ophys import DfOverF, Fluorescence

    holder = DfOverF(name=container) if container == "DfOverF" else Fluorescence(name=container)
    holder.create_roi_response_series(name=series, data=data, rois=region, unit="a.u.", timestamps=timestamps)
    module.add(holder)


def add_movie(nwbfile, frames, timestamps, name="natural_movie"):
    from pynwb.image import OpticalSeries

    nwbfile.add_stimulus(
        OpticalSeries(
            name=name, data=frames, timestamps=timestamps, distance=0.15, field_of_view=[0.3, 0.17],
            orientation="lower left", unit="n.a.", description="grey-level movie frames",
        )
    )  # fmt: skip


def add_behaviour(nwbfile, timestamps, running=None, pupil_area=None, pupil_xy=None):
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, PupilTracking

    module = nwbfile.create_processing_module(name="behavior", description="running and eye tracking")
    if running is not None:
        speed = BehavioralTimeSeries(name="BehavioralTimeSeries")
        speed.create_timeseries(name="running_speed", data=running, unit="cm/s", timestamps=timestamps)
        module.add(speed)
    if pupil_area is not None or pupil_xy is not None:
        pupil = PupilTracking(name="PupilTracking")
        if pupil_area is not None:
            pupil.add_timeseries(TimeSeries(name="pupil_area", data=pupil_area, unit="px^2", timestamps=timestamps))
        if pupil_xy is not None:
            pupil.add_timeseries(TimeSeries(name="pupil_position", data=pupil_xy, unit="px", timestamps=timestamps))
        module.add(pupil)


def write(nwbfile, path: Path) -> Path:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def movie_session(path: Path, *, n_rois=6, repeats=(0, 1, 0, 2, 0, 3, 1, 4), frames_per_trial=60, seed=0, **parts):
    """A session of trials that each show one of a few noise movies (72 x 128, 30 Hz, 10 blank frames between
    trials), imaged at 15 Hz from 0.01 s on. Returns (path, truth) where truth holds the arrays written.

    parts: responses ('Deconvolved', 'DfOverF' or None), running/pupil (bool), trials (bool), and corruptions:
    stimulus_times / response_times / responses / movie (arrays replacing the good ones).
    """
    rng = np.random.default_rng(seed)
    movies = rng.integers(0, 256, (max(repeats) + 1, frames_per_trial, 72, 128), dtype=np.uint8)
    gap = np.full((10, 72, 128), 128, np.uint8)
    frames = np.concatenate([np.concatenate([movies[m], gap]) for m in repeats])
    stim_times = 1.0 + np.arange(len(frames)) / 30.0
    starts = 1.0 + np.arange(len(repeats)) * (frames_per_trial + 10) / 30.0
    stops = starts + frames_per_trial / 30.0
    img_times = np.arange(0.01, stim_times[-1] + 1.0, 1 / 15.0)
    # smooth responses: linear interpolation onto the 30 Hz clock is then accurate to ~1e-3
    phase = rng.uniform(0, 2 * np.pi, n_rois)
    responses = 1.5 + np.sin(0.7 * img_times[:, None] + phase[None, :])
    nwbfile = new_file()
    module, region, centres = add_rois(nwbfile, n_rois, rng, parts.get("iscell"))
    kind = parts.get("responses", "Deconvolved")
    if kind is not None:
        data = parts.get("response_data", responses)
        add_responses(module, region, data, parts.get("response_times", img_times), kind, kind)
        if kind == "Deconvolved":
            add_responses(module, region, responses - 1.0, img_times, "DfOverF", "DfOverF")
    add_movie(nwbfile, parts.get("movie", frames), parts.get("stimulus_times", stim_times))
    behaviour_times = np.arange(0.0, stim_times[-1] + 1.0, 1 / 60.0)
    running = 5 + 3 * np.sin(behaviour_times) if parts.get("running", True) else None
    pupil = parts.get("pupil", True)
    area = 400 + 50 * np.cos(behaviour_times) if pupil else None
    xy = np.stack([np.sin(behaviour_times), np.cos(behaviour_times)], 1) if pupil else None
    add_behaviour(nwbfile, behaviour_times, running, area, xy)
    if parts.get("trials", True):
        for a, b in zip(starts, stops, strict=True):
            nwbfile.add_trial(start_time=a, stop_time=b)
    truth = {
        "frames": frames, "stimulus_times": stim_times, "starts": starts, "stops": stops, "repeats": list(repeats),
        "imaging_times": img_times, "responses": responses, "centres": centres, "behaviour_times": behaviour_times,
        "running": running, "pupil_area": area, "pupil_xy": xy,
    }  # fmt: skip
    return write(nwbfile, path), truth


def from_recording(
    recording, path: Path, *, pupil: bool = False, scale: int = 2, imaging_step: int = 1, trial_ids=None, neurons=None
) -> Path:
    """An NWB file of a Sensorium-layout recording (e.g. the in-silico mouse): its trials (`trial_ids`, default
    all) back to back in id order with 0.5 s of grey between them, the movie at `scale` x the resolution, the
    responses of `neurons` (default all) imaged at 30 / `imaging_step` Hz (each sample the mean over its frames);
    running speed, and the pupil only if `pupil`."""
    infos = [recording.info(i) for i in (trial_ids if trial_ids is not None else range(len(recording.trials)))]
    neurons = np.arange(recording.n_neurons) if neurons is None else np.asarray(neurons)
    frames, responses, behaviour, stim_t, trials = [], [], [], [], []
    t = 2.0
    for info in infos:
        trial = recording.trial(info.trial_id)
        n = trial.length
        video = np.repeat(np.repeat(trial.video, scale, 1), scale, 2)
        frames += [video, np.full((15, *video.shape[1:]), 128, np.float32)]
        times = t + np.arange(n + 15) / 30.0
        stim_t.append(times)
        resp = trial.responses[neurons] if trial.responses is not None else np.zeros((neurons.size, n), np.float32)
        responses.append(np.concatenate([resp, np.repeat(resp[:, -1:], 15, 1)], 1))
        behaviour.append(np.concatenate([trial.behaviour, np.repeat(trial.behaviour[:, -1:], 15, 1)], 1))
        trials.append((t, t + n / 30.0))
        t = times[-1] + 1 / 30.0
    stim_t = np.concatenate(stim_t)
    nwbfile = new_file(recording.name)
    rng = np.random.default_rng(0)
    module, region, _ = add_rois(nwbfile, neurons.size, rng)
    responses = np.concatenate(responses, 1)
    usable = stim_t.size // imaging_step * imaging_step
    imaging_t = stim_t[:usable].reshape(-1, imaging_step).mean(1)
    responses = responses[:, :usable].reshape(neurons.size, -1, imaging_step).mean(2)
    add_responses(module, region, responses.T.astype(np.float32), imaging_t)
    add_movie(nwbfile, np.round(np.concatenate(frames)).astype(np.uint8), stim_t)
    behaviour = np.concatenate(behaviour, 1)
    add_behaviour(
        nwbfile, stim_t, running=behaviour[1], pupil_area=behaviour[0] if pupil else None,
        pupil_xy=behaviour[2:].T if pupil else None,
    )  # fmt: skip
    for a, b in trials:
        nwbfile.add_trial(start_time=a, stop_time=b)
    return write(nwbfile, path)
