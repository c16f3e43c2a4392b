"""`train --devices 2`: two gloo processes share each global batch (DDP) and end with the single-process weights."""

import numpy as np
import torch
from conftest import simulate_tiny
from safetensors.numpy import load_file

from v1recon.training.distributed import GlobalBatchNorm
from v1recon.training.run import train_run

ARGS = dict(preset="fast3d", n_models=1, epochs=2, samples_per_epoch=16, batch_size=4, device="cpu", progress=False)
TOLERANCE = 1e-5  # the gradients of two half batches are summed in another order than one whole batch's


def test_two_processes_train_the_weights_of_one(tmp_path):
    data = simulate_tiny(tmp_path, n_mice=1)
    runs = {n: train_run(data, tmp_path / f"devices-{n}", devices=n, log=lambda _: None, **ARGS) for n in (1, 2)}
    assert [m["complete"] for r in runs.values() for m in r.models] == [True, True]
    one, two = (load_file(tmp_path / f"devices-{n}" / "models" / "model-0.safetensors") for n in (1, 2))
    start = load_file(tmp_path / "devices-1" / "models" / "start.safetensors")
    assert one.keys() == two.keys() and start
    for key in one:
        np.testing.assert_allclose(one[key], two[key], atol=TOLERANCE, rtol=TOLERANCE, err_msg=key)
    moved = [k for k in one if not np.allclose(one[k], 0) and "weight" in k]
    assert moved  # the models did train


def test_global_batch_norm_equals_batch_norm_in_one_process(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = torch.nn.BatchNorm3d(3)
        twin = torch.nn.BatchNorm3d(3)
        synced = GlobalBatchNorm(twin)
        assert synced.weight is twin.weight and synced.running_mean is twin.running_mean  # same parameters
        x = torch.randn(4, 3, 2, 5, 5) * 3 + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = plain(xa), synced(xb)
        (ya * torch.arange(ya.numel()).reshape(ya.shape)).sum().backward()
        (yb * torch.arange(yb.numel()).reshape(yb.shape)).sum().backward()
        torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(plain.running_var, twin.running_var)
        torch.testing.assert_close(plain.running_mean, twin.running_mean)
    finally:
        dist.destroy_process_group()


def test_a_mouse_too_large_for_memory_trains_from_disk_to_the_same_weights(tmp_path, monkeypatch):
    from v1recon.training import clips
    from v1recon.training.run import _training_trials

    data = simulate_tiny(tmp_path, n_mice=1)
    args = {**ARGS, "epochs": 1}
    _training_trials.cache_clear()
    train_run(data, tmp_path / "memory", log=lambda _: None, **args)
    monkeypatch.setattr(clips, "IN_MEMORY_BYTES", 0)  # every mouse counts as large
    _training_trials.cache_clear()
    assert isinstance(_training_trials(str(data), ("insilico-s0-m0",), 7)[0].responses, clips.DiskResponses)
    train_run(data, tmp_path / "disk", log=lambda _: None, **args)
    _training_trials.cache_clear()
    a, b = (load_file(tmp_path / n / "models" / "model-0.safetensors") for n in ("memory", "disk"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
