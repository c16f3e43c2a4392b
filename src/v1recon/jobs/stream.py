"""The `stream` job: replay one recorded trial, chunk by chunk at its real rate, through the streaming reconstructor.

Inputs are checked first (mouse, trial, neuron count, behaviour, NaN, the output folder). The trial's responses and
behaviour are pushed `chunk` frames at a time, each chunk when it would have been recorded (30 Hz) unless
`realtime` is off; the frames that come back are the streamed movie. For comparison the offline `fast`
reconstruction of the same trial is taken from RUN/reconstructions when one through the same encoders exists, else
computed now (the reconstruct command's defaults).

Tasks (v1recon.jobs.tasks, run in this process): the replay and the offline reconstruction write their parts to
OUT/<mouse>/.parts/, a third task writes the trial's files from them; the same command resumes after an interruption
and does nothing once the files exist.

Output (OUT, by default RUN/streams/<mouse>-trial-<id>):
    OUT/<mouse>/trial-<id>.npz   streamed movie ("reconstruction"), truth, offline movie, masks, loss per push,
                                 per-push latency, the wall time each frame came out, the measured response lags
    OUT/<mouse>/trial-<id>.json  sidecar: stream settings and chunk, delay (frames, ms; the response delay measured
                                 from the encoders), latency and real-time factor, metrics vs truth and vs offline
    OUT/<mouse>/trial-<id>.mp4 / .gif / .png   truth | streamed | offline | error, as the reconstruct job draws them
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.recon.streaming import StreamingReconstructor, StreamSettings

STREAMS_DIR = "streams"
PARTS_DIR = ".parts"
KIND = "stream"
MIN_OFFLINE_R = 0.1  # offline video correlation below which the fraction streamed / offline is not stated


def default_out(run_dir: str | Path, mouse: str, trial_id: int) -> Path:
    """RUN/streams/<mouse>-trial-<id>: where `v1recon stream` writes unless told otherwise (the report looks there)."""
    return Path(run_dir) / STREAMS_DIR / f"{mouse}-trial-{trial_id}"


@dataclass
class Replay:
    """What streaming one trial produced and how long it took."""

    movie: np.ndarray  # (T, 36, 64) the streamed movie
    frame_out_s: np.ndarray  # (T,) seconds after the start at which each frame came out
    push_s: np.ndarray  # (P,) wall seconds of each push
    push_cpu_s: np.ndarray  # (P,) process CPU seconds of each push
    loss: np.ndarray  # (P,) Poisson loss of the window after each push
    stream: StreamingReconstructor
    seconds: float  # wall time of the whole replay
    recording_s: float  # length of the recording
    realtime: bool  # pushed at the recording's rate (else as fast as possible)

    def cost(self) -> dict:
        """Latency and real-time figures for the sidecar (ms and seconds of compute per second of recording)."""
        shown = np.arange(len(self.frame_out_s)) / FRAME_RATE_HZ
        return {
            "pushes": int(len(self.push_s)),
            "latency_median_ms": 1000 * float(np.median(self.push_s)),
            "latency_p95_ms": 1000 * float(np.percentile(self.push_s, 95)),
            "realtime_factor": float(self.push_s.sum() / self.recording_s),
            "realtime_factor_cpu": float(self.push_cpu_s.sum() / self.recording_s),
            # from a frame's display (at 30 Hz) to its output: the delay a closed loop sees, with the compute and the
            # wait for the chunk; only meaningful at the real rate
            "frame_delay_median_ms": 1000 * float(np.median(self.frame_out_s - shown)) if self.realtime else None,
            "steps": self.stream.steps_run,
            "window_passes": self.stream.window_passes,
            "seconds": self.seconds,
        }


def replay(stream: StreamingReconstructor, responses, behaviour, chunk: int, realtime: bool, on_push=None) -> Replay:
    """Push a recorded trial (N, T), (4, T) in chunks; after each push `on_push(stream, push seconds so far,
    perf_counter at the start)`."""
    if chunk < 1:
        raise V1ReconError(f"--chunk {chunk}: must be at least 1 frame.")
    if stream.lags is None:
        stream.measure(behaviour[:, 0])  # before the clock starts: a one-off cost, not a push's
    n = responses.shape[1]
    frames, out_s, push_s, cpu_s, loss = [], [], [], [], []
    started = time.perf_counter()
    for i in range(0, n, chunk):
        if realtime:  # the chunk's last frame is recorded at (i + k) / 30 s
            time.sleep(max(0.0, started + min(i + chunk, n) / FRAME_RATE_HZ - time.perf_counter()))
        wall, cpu = time.perf_counter(), time.process_time()
        out = stream.push(responses[:, i : i + chunk], behaviour[:, i : i + chunk])
        push_s.append(time.perf_counter() - wall)
        cpu_s.append(time.process_time() - cpu)
        loss.append(stream.last_loss)
        frames.append(out)
        out_s += [time.perf_counter() - started] * len(out)
        if on_push is not None:
            on_push(stream, push_s, started)
    frames.append(stream.finish())
    out_s += [time.perf_counter() - started] * len(frames[-1])
    return Replay(np.concatenate(frames), np.asarray(out_s), np.asarray(push_s), np.asarray(cpu_s),
                  np.asarray(loss, np.float32), stream, time.perf_counter() - started, n / FRAME_RATE_HZ,
                  realtime)  # fmt: skip


def find_offline(setup, trial_id: int, oracle: bool) -> tuple[np.ndarray, str] | None:
    """An offline `fast` reconstruction of this trial from its recorded responses through the same encoders, under
    RUN/reconstructions (any set), or None."""
    from v1recon.io import read_json

    for npz in sorted((Path(setup.run.path) / "reconstructions").glob(f"*/{setup.mouse}/trial-{trial_id}.npz")):
        try:
            side = read_json(npz.with_suffix(".json"))
        except V1ReconError:
            continue
        config, encoders = side.get("config") or {}, (side.get("models") or {}).get("encoders")
        condition = (config.get("method"), bool(config.get("oracle")), bool(config.get("from_predicted")))
        if condition == ("fast", oracle, False) and encoders == setup.encoder_names:
            with np.load(npz) as f:
                return f["reconstruction"].astype(np.float32), str(npz)
    return None


def offline_movie(setup, responses, behaviour, seed: int, progress: bool) -> tuple[np.ndarray, str]:
    """The offline `fast` reconstruction of one trial, computed now with the reconstruct command's defaults."""
    from tqdm.auto import tqdm

    from v1recon.recon.reconstructor import ReconConfig, reconstruct_trials

    config = ReconConfig(seed=seed)
    with tqdm(desc="offline fast reconstruction", unit="step", disable=not progress, leave=False) as bar:
        (result,) = reconstruct_trials(setup.encoders, [responses], [behaviour], setup.update_mask, config,
                                       on_iteration=lambda: bar.update(1))  # fmt: skip
    return result.video, "computed now (fast method, reconstruct defaults)"


@dataclass(frozen=True)
class StreamJob:
    """What the tasks of one stream job share (plain data)."""

    run_dir: str
    data: str
    out: str
    mouse: str
    trial: int
    chunk: int
    settings: StreamSettings
    realtime: bool
    oracle: bool
    models: tuple[int, ...] | None
    device: str
    offline: bool
    movies: bool
    progress: bool = True

    @property
    def stem(self) -> Path:
        return Path(self.out) / self.mouse / f"trial-{self.trial}"

    def part(self, name: str, suffix: str = ".npz") -> Path:
        return Path(self.out) / self.mouse / PARTS_DIR / f"trial-{self.trial}-{name}{suffix}"


@lru_cache(maxsize=4)
def _open(run_dir: str, data: str, mouse: str, device: str, models, oracle: bool):
    """The mouse's setup and the trial set loader, once per process."""
    from v1recon.jobs.mouse import open_mouse, run_mice
    from v1recon.runs import load_run

    run = load_run(run_dir)
    recordings = run_mice(run, data, all_mice=False)
    rec = next(r for r in recordings if r.name == mouse)
    return open_mouse(run, rec, recordings, device, models, oracle, "use")


def _inputs(job: StreamJob):
    from v1recon.jobs.mouse import load_trials

    setup = _open(job.run_dir, job.data, job.mouse, job.device, job.models, job.oracle)
    return setup, load_trials(setup.recording, [job.trial])


# -- the tasks -------------------------------------------------------------------------------------------------------
def stream_part(job: StreamJob) -> dict:
    """Task: replay the trial through the streaming reconstructor; its movie and timing go to OUT/<mouse>/.parts/."""
    from v1recon.io import save_npz, write_json

    setup, trials = _inputs(job)
    stream = StreamingReconstructor(setup.encoders, setup.update_mask, job.settings)
    result = _replay_with_progress(stream, trials, job.chunk, job.realtime, job.progress)
    save_npz(job.part("stream"), movie=result.movie, frame_out_s=result.frame_out_s, push_s=result.push_s,
             loss=result.loss, lags=np.asarray(stream.lags, np.float32))  # fmt: skip
    write_json(job.part("stream", ".json"), {"summary": stream.summary(), "cost": result.cost()})
    return result.cost()


def offline_part(job: StreamJob) -> dict:
    """Task: the offline reconstruction of the same trial (found under RUN/reconstructions, else computed now)."""
    from v1recon.io import save_npz

    setup, trials = _inputs(job)
    found = find_offline(setup, job.trial, job.oracle)
    if found is None:
        found = offline_movie(setup, trials.responses[0], trials.behaviours[0], job.settings.seed, job.progress)
    save_npz(job.part("offline"), movie=found[0], source=np.array(found[1]))
    return {"source": found[1]}


def trial_files(job: StreamJob) -> dict:
    """Task: the streamed trial's files from the parts (npz, sidecar, movies, figure); removes the parts."""
    from v1recon.io import read_json

    setup, trials = _inputs(job)
    with np.load(job.part("stream")) as f:
        streamed = {k: f[k] for k in f.files}
    timing = read_json(job.part("stream", ".json"))
    reference = None
    if job.offline:
        with np.load(job.part("offline")) as f:
            reference = (f["movie"], str(f["source"]))
    side = write_stream(setup, trials, streamed, timing, reference, job)
    for path in (job.part("stream"), job.part("stream", ".json"), job.part("offline")):
        path.unlink(missing_ok=True)
    return {"video_correlation": side["metrics"]["video_correlation"]}


def run_stream(
    run_dir,
    trial_id: int,
    data=None,
    mouse: str | None = None,
    out=None,
    chunk: int = 8,
    settings: StreamSettings | None = None,
    realtime: bool = True,
    oracle: bool = False,
    models: str | None = None,
    offline: bool = True,
    movies: bool = True,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Stream one trial of one mouse of the run (see the module docstring) as tasks (the replay, the offline
    reconstruction, the trial's files), resumed where an earlier run of the same command stopped; returns the
    sidecar's content, with the path of the trial's npz under "path"."""
    from v1recon.device import pick_device
    from v1recon.io import read_json
    from v1recon.jobs.mouse import run_mice
    from v1recon.jobs.outputs import Input, claim_output, prepare_output
    from v1recon.jobs.reconstruct import parse_models
    from v1recon.jobs.tasks import STAMPS_DIR, Job, Task, config_hash, run_job
    from v1recon.recon.reconstructor import check_inputs
    from v1recon.runs import load_run, recording_identity

    settings = settings or StreamSettings()
    if chunk < 1:
        raise V1ReconError(f"--chunk {chunk}: must be at least 1 frame.")
    run = load_run(run_dir)
    data = Path(data) if data is not None else Path(run.data)
    recordings = run_mice(run, data, all_mice=False)
    name = mouse or recordings[0].name
    run.mouse_index(name)
    rec = next((r for r in recordings if r.name == name), None)
    if rec is None:
        raise V1ReconError(f"{data}: holds no recording of mouse {name}.")
    if trial_id not in rec.trial_ids():
        raise V1ReconError(f"{rec.path}: has no trial {trial_id} (its trials are {min(rec.trial_ids())}..).")
    model_idx = parse_models(models, run.n_models, str(run_dir))
    out = Path(out) if out is not None else default_out(run_dir, name, trial_id)
    job = StreamJob(str(Path(run_dir).resolve()), str(data.resolve()), str(out.resolve()), name, int(trial_id),
                    chunk, settings, realtime, oracle, tuple(model_idx) if model_idx is not None else None,
                    str(pick_device(device)), offline, movies, progress)  # fmt: skip
    setup, trials = _inputs(job)  # every check before any computation
    check_inputs(setup.encoders, trials.responses, trials.behaviours, trials.names, setup.update_mask)
    inputs = [Input(data), Input(Path(run_dir), ("reconstructions", "analyses", STREAMS_DIR))]
    identity = {"settings": settings.to_dict(), "chunk": chunk, "oracle": oracle, "models": setup.encoder_names,
                "mouse": name, "trial": trial_id, "data": recording_identity(rec)["identity"], "run": run.models,
                "offline": offline, "realtime": realtime, "movies": movies}  # fmt: skip
    prepare_output(out, KIND, config_hash(identity), inputs, overwrite)
    suffixes = (".npz", ".json", ".mp4", ".gif", ".png") if movies else (".npz", ".json")
    files = tuple(job.stem.with_suffix(suffix) for suffix in suffixes)
    tasks = [Task(f"{name}/trial-{trial_id}/stream", stream_part, {"job": job},
                  (job.part("stream"), job.part("stream", ".json")), identity)]  # fmt: skip
    if offline:
        tasks.append(Task(f"{name}/trial-{trial_id}/offline", offline_part, {"job": job}, (job.part("offline"),),
                          identity))  # fmt: skip
    tasks.append(Task(f"{name}/trial-{trial_id}/files", trial_files, {"job": job}, files, identity,
                      tuple(t.name for t in tasks)))  # fmt: skip
    with claim_output(out, KIND, identity, config_hash(identity), inputs, overwrite):
        run_job(Job("stream", out / STAMPS_DIR, tasks), "local", progress=progress, log=print)
    return {**read_json(job.stem.with_suffix(".json")), "path": str(job.stem.with_suffix(".npz"))}


def _replay_with_progress(stream, trials, chunk: int, realtime: bool, progress: bool) -> Replay:
    """`replay` with a live line: frames in and out, the delay, the real-time factor, how far behind the recording."""
    from tqdm.auto import tqdm

    responses, behaviour = trials.responses[0], trials.behaviours[0]
    n = responses.shape[1]
    with tqdm(total=n, desc=f"stream trial {trials.ids[0]}", unit="frame", disable=not progress) as bar:

        def on_push(st, push_s, started):
            recorded = st.frames_in / FRAME_RATE_HZ
            behind = time.perf_counter() - started - recorded
            line = (f"in {st.frames_in}, out {st.frames_out}, delay {st.delay_ms:.0f} ms, "
                    f"real-time factor {sum(push_s) / recorded:.2f}")  # fmt: skip
            bar.set_postfix_str(line + (f", {behind:.1f} s behind" if realtime and behind > 0.05 else ""), False)
            bar.update(st.frames_out - bar.n)

        result = replay(stream, responses, behaviour, chunk, realtime, on_push)
        bar.update(n - bar.n)
    return result


def write_stream(setup, trials, streamed: dict, timing: dict, reference, job: StreamJob) -> dict:
    """The streamed trial's files (npz, sidecar, movies, figure) from the replay's arrays and its summary and cost;
    `reference`: (offline movie, where it came from) or None. Returns the sidecar's content."""
    from v1recon.io import read_json, save_npz, write_sidecar
    from v1recon.jobs.mouse import predicted_responses
    from v1recon.jobs.reconstruct import write_media
    from v1recon.metrics.video import response_consistency, video_correlation, video_metrics
    from v1recon.recon.reconstructor import Reconstruction
    from v1recon.recon.streaming import DELAY_FRACTION
    from v1recon.runs import recording_identity

    stem, trial_id, truth, movie = job.stem, job.trial, trials.videos[0], streamed["movie"]
    summary, cost = timing["summary"], timing["cost"]
    evaluation = setup.eval_mask
    metrics = video_metrics(movie, truth, evaluation)
    (pred,) = predicted_responses(setup.encoders, [movie], trials.behaviours, setup.device)
    metrics["response_consistency"] = float(response_consistency(pred, np.maximum(trials.responses[0], 0)))
    comparison = {"source": None}
    arrays = {}
    if reference is not None:
        offline, source = reference
        off_r = video_correlation(offline, truth, evaluation)
        comparison = {
            "source": source,
            "offline_video_correlation": off_r,
            "streamed_vs_offline_correlation": video_correlation(movie, offline, evaluation),
            # a ratio to a correlation near zero says nothing (an encoder that reconstructs nothing)
            "fraction_of_offline": metrics["video_correlation"] / off_r if off_r >= MIN_OFFLINE_R else None,
        }
        arrays["offline"] = offline.astype(np.float32)
    response_delay = summary["response_delay_frames"]
    delay = {
        "frames": summary["delay_frames"],
        "ms": summary["delay_ms"],
        "response_delay_frames": response_delay,
        "response_delay_ms": 1000 * response_delay / FRAME_RATE_HZ,
        "response_delay_fraction": DELAY_FRACTION,
        "context_frames": summary["context_frames"],
    }
    loss = streamed["loss"][None]
    save_npz(
        stem.with_suffix(".npz"),
        reconstruction=movie.astype(np.float32),
        truth=truth.astype(np.float32),
        **arrays,
        update_mask=setup.update_mask,
        eval_mask=evaluation,
        alpha=setup.alpha if setup.alpha is not None else np.ones(FRAME_SHAPE, np.float32),
        loss=loss,
        push_ms=(1000 * streamed["push_s"]).astype(np.float32),
        frame_out_s=streamed["frame_out_s"].astype(np.float32),
        lags=streamed["lags"],
    )
    write_sidecar(
        stem.with_suffix(".npz"),
        config={"stream": summary["settings"], "chunk": job.chunk, "realtime": job.realtime, "oracle": job.oracle},
        condition={"label": "stream", "encoders": "true model" if job.oracle else "ensemble", "responses": "recorded"},
        seed=job.settings.seed,
        data={**recording_identity(setup.recording), "trial": trial_id, "frames": int(truth.shape[0])},
        models={"run": job.run_dir, "encoders": setup.encoder_names},
        mask={
            "source": setup.mask_source,
            "note": setup.mask_note,
            "update_pixels": int(setup.update_mask.sum()),
            "eval_pixels": int(evaluation.sum()),
        },  # fmt: skip
        delay=delay,
        cost=cost,
        metrics=metrics,
        offline=comparison,
    )
    if job.movies:
        res = Reconstruction(movie, movie[None], loss, np.full_like(loss, np.nan), [cost["steps"]],
                             cost["window_passes"], cost["seconds"])  # fmt: skip
        also = {"offline": arrays["offline"]} if "offline" in arrays else None
        write_media(stem, truth, movie, evaluation, res, setup.alpha, trial_id, also=also, label="streamed")
    return read_json(stem.with_suffix(".json"))
