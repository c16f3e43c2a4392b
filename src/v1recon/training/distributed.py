"""One model trained by several processes with torch DistributedDataParallel (`v1recon train --devices N`).

Each process draws the same global batch of clips from the same generator and trains on its 1/N share; DDP averages
the gradients, which for a loss averaged over clips equals the single-process gradient of the whole batch. So the
global batch, the learning rate and the schedule are the single-process recipe's, and the weights after a step equal
the single-process run's within float tolerance (reduction order). Process group: NCCL across GPUs (one per
process), gloo on the CPU. The first process writes the checkpoints, the log and the resume state (unchanged
layout); every process resumes from the same state.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from v1recon.errors import V1ReconError


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation with statistics over the whole global batch (all processes), for gloo on the CPU where
    torch's SyncBatchNorm does not run. Takes over the parameters and buffers of the layer it replaces."""

    def __init__(self, layer: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
        self.weight, self.bias = layer.weight, layer.bias  # the same Parameters: the optimiser keeps them
        self.running_mean, self.running_var = layer.running_mean, layer.running_var
        self.num_batches_tracked = layer.num_batches_tracked

    def _check_input_dim(self, x: torch.Tensor) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        count = torch.tensor(float(x.numel() // x.shape[1]))
        with warnings.catch_warnings():  # the autograd-aware all_reduce is marked deprecated but has no successor yet
            warnings.simplefilter("ignore", FutureWarning)
            stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count[None]]))  # differentiable sum
        n = stats[-1]
        mean = stats[: x.shape[1]] / n
        var = stats[x.shape[1] : 2 * x.shape[1]] / n - mean**2
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def sync_batch_norm(module: nn.Module, cuda: bool) -> nn.Module:
    """Every batch-norm layer of `module` normalised over the global batch (SyncBatchNorm on GPUs)."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, GlobalBatchNorm(child))
        else:
            sync_batch_norm(child, cuda)
    return module


class _TrainForward(nn.Module):
    """`model.train_forward` as a module's forward, so that DDP sees (and synchronises) the training pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, behaviour: torch.Tensor, mouse: int):
        return self.model.train_forward(video, behaviour, mouse)


@dataclass
class DataParallel:
    """This process's place in the group and the DDP-wrapped training pass (what the Trainer uses)."""

    rank: int
    world: int
    module: nn.Module

    def shard(self, *batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This process's contiguous share of each batch (the batch size must divide by the world size)."""
        size = batches[0].shape[0] // self.world
        return tuple(b[self.rank * size : (self.rank + 1) * size] for b in batches)

    def agree(self, values: tuple[float, ...]) -> tuple[float, ...]:
        """The first process's values, on every process."""
        t = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(t, src=0)
        return tuple(float(v) for v in t)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, args: tuple, result: dict) -> None:
    from v1recon.device import seed_everything
    from v1recon.models import build_model
    from v1recon.runs import model_stem
    from v1recon.training.run import _mice
    from v1recon.training.trainer import Trainer

    run, split, config, extra, device, shared, budget, progress = args
    cuda = device.startswith("cuda")
    dev = torch.device(f"cuda:{rank}") if cuda else torch.device("cpu")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world) if not cuda else 1)
        seed_everything(split.seed)
        model = build_model(run.preset, run.neuron_counts, **config.model_overrides).to(dev)
        trainer = Trainer(model, _mice(run), split, config, model_stem(run.path, split.model_index), dev, extra,
                          progress and rank == 0, shared, parallel=None)  # fmt: skip
        wrapped = nn.parallel.DistributedDataParallel(
            _TrainForward(sync_batch_norm(trainer.model, cuda)), device_ids=[rank] if cuda else None,
            find_unused_parameters=True,
        )  # fmt: skip
        trainer.parallel = DataParallel(rank, world, wrapped)
        trainer.writes = rank == 0
        trainer.fit(budget)
        if rank == 0:
            result.update(epoch=trainer.epoch, planned_epochs=trainer.planned_epochs, elapsed_s=trainer.elapsed_s,
                          history=trainer.history)  # fmt: skip
    finally:
        dist.destroy_process_group()


@dataclass
class DistributedResult:
    """What the processes' training left behind (the fields of a Trainer that the run's status needs)."""

    epoch: int
    planned_epochs: int
    elapsed_s: float
    history: list


def train_distributed(run, split, config, extra, device: str, devices: int, shared, budget, progress):
    """Train model `split.model_index` of `run` with `devices` processes; returns its DistributedResult."""
    if config.batch_size % devices:
        raise V1ReconError(f"--devices {devices}: the batch size {config.batch_size} must divide by it.")
    if device.startswith("cuda") and torch.cuda.device_count() < devices:
        raise V1ReconError(f"--devices {devices}: only {torch.cuda.device_count()} GPUs are visible.")
    with mp.Manager() as manager:
        result = manager.dict()
        args = (run, split, config, extra, device, shared, budget, progress)
        mp.spawn(_worker, args=(devices, free_port(), args, result), nprocs=devices, join=True)
        return DistributedResult(**dict(result))
