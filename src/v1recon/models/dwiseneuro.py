"""DwiseNeuro, the encoder the published reconstructions used, with parameter names as in its checkpoints.

A window is 16 frames taken every 2nd frame and ending at frame t (frames t-30, t-28, ..., t). The network maps
one window, stacked as (B, 5, 16, 64, 64) = video on a 64x64 canvas + 4 broadcast behaviour planes, to the
responses of one mouse at those 16 frames (B, N, 16). Whole trials are predicted by running every window that
ends at frame 30..L-1 (batched, in chunks that fit a memory budget) and averaging the predictions that land on
each frame, which gives the same numbers as the published one-window-at-a-time loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from v1recon.models.base import MultiMouseModel, WindowGeometry, check_encoder_inputs, module_state, with_defaults

WINDOW = WindowGeometry(frames=16, step=2)  # a window ending at frame t sees t - 30, t - 28, ..., t
CANVAS = 64  # the 36x64 frame sits on a 64x64 canvas
CANVAS_TOP = 14  # rows 14..49 hold the frame

PAPER_KWARGS = dict(
    in_channels=5,
    core_features=(64, 64, 64, 64, 128, 128, 128, 256, 256),
    spatial_strides=(2, 1, 1, 1, 2, 1, 1, 2, 1),
    spatial_kernel=3,
    temporal_kernel=5,
    expansion_ratio=7,
    se_reduce_ratio=32,
    cortex_features=(1024, 2048, 4096),
    groups=2,
    softplus_beta=0.07,
    drop_rate=0.4,
    drop_path_rate=0.1,
)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero the whole residual branch of random samples, rescale the kept ones."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def repeat_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat the channel axis (dim 1) until it is at least `channels` wide, keep the first `channels`."""
    if x.shape[1] == channels:
        return x
    reps = math.ceil(channels / x.shape[1])
    return x.repeat((1, reps) + (1,) * (x.ndim - 2))[:, :channels]


class BatchNormAct(nn.Module):
    """BatchNorm (held as `.bn`, as in the checkpoints) followed by SiLU or nothing."""

    def __init__(self, channels: int, dims: int = 3, act: bool = True) -> None:
        super().__init__()
        self.bn = {1: nn.BatchNorm1d, 3: nn.BatchNorm3d}[dims](channels)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class PositionalEncoding3d(nn.Module):
    """Fixed sinusoidal encoding of (time, height, width) positions, added to a (B, C, T, H, W) tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        c = math.ceil(channels / 6) * 2
        c += c % 2
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, c, 2).float() / c)))

    def axis_embedding(self, n: int, device: torch.device) -> torch.Tensor:
        angles = torch.arange(n, device=device, dtype=self.inv_freq.dtype)[:, None] * self.inv_freq[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (n, c): all sines, then all cosines

    def encoding(self, t: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        et, eh, ew = (self.axis_embedding(n, device) for n in (t, h, w))
        c = et.shape[1]
        emb = torch.cat(
            [
                et[:, None, None, :].expand(t, h, w, c),
                eh[None, :, None, :].expand(t, h, w, c),
                ew[None, None, :, :].expand(t, h, w, c),
            ],
            dim=-1,
        )[..., : self.channels]
        return emb.permute(3, 0, 1, 2)  # (C, T, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.encoding(*x.shape[2:], device=x.device).to(x.dtype)


class SqueezeExcite3d(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv3d(channels, reduced, 1, bias=True)
        self.act = nn.SiLU()
        self.conv_expand = nn.Conv3d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(s))))


class InvertedResidual3d(nn.Module):
    """Pointwise expansion, depthwise spatial then temporal convs, squeeze-excite, pointwise projection."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        stride: int,
        spatial_kernel: int,
        temporal_kernel: int,
        expansion_ratio: int,
        se_reduce_ratio: int,
        drop_path_rate: float,
    ) -> None:
        super().__init__()
        mid = in_features * expansion_ratio
        self.stride = stride
        self.out_features = out_features
        self.drop_path_rate = drop_path_rate
        sk, tk = spatial_kernel, temporal_kernel
        self.conv_pw = nn.Sequential(nn.Conv3d(in_features, mid, 1, bias=False), BatchNormAct(mid))
        self.spat_covn_dw = nn.Sequential(
            nn.Conv3d(mid, mid, (1, sk, sk), stride=(1, stride, stride), padding=(0, sk // 2, sk // 2),
                      groups=mid, bias=False),
            BatchNormAct(mid),
        )  # fmt: skip
        self.temp_covn_dw = nn.Sequential(
            nn.Conv3d(mid, mid, (tk, 1, 1), padding=(tk // 2, 0, 0), groups=mid, bias=False), BatchNormAct(mid)
        )
        self.se = SqueezeExcite3d(mid, mid // se_reduce_ratio)
        self.conv_pwl = nn.Sequential(
            nn.Conv3d(mid, out_features, 1, bias=False), BatchNormAct(out_features, act=False)
        )
        self.bn_sc = BatchNormAct(out_features, act=False)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            t, h, w = x.shape[2:]
            x = F.interpolate(x, size=(t, math.ceil(h / self.stride), math.ceil(w / self.stride)), mode="nearest")
        return self.bn_sc(repeat_channels(x, self.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.se(self.temp_covn_dw(self.spat_covn_dw(self.conv_pw(x)))))
        return drop_path(y, self.drop_path_rate, self.training) + self.shortcut(x)


class DepthwiseCore(nn.Module):
    def __init__(self, kw: dict) -> None:
        super().__init__()
        feats, strides = kw["core_features"], kw["spatial_strides"]
        self.stem = nn.Sequential(
            nn.Conv3d(kw["in_channels"], feats[0], 1, bias=False), BatchNormAct(feats[0], act=False)
        )
        blocks: list[nn.Module] = []
        n = len(strides)
        for k in range(n):
            c_in, c_out = feats[k], feats[min(k + 1, len(feats) - 1)]
            blocks.append(PositionalEncoding3d(c_in))
            blocks.append(
                InvertedResidual3d(
                    c_in, c_out, strides[k], kw["spatial_kernel"], kw["temporal_kernel"], kw["expansion_ratio"],
                    kw["se_reduce_ratio"], kw["drop_path_rate"] * k / n,
                )
            )  # fmt: skip
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class CortexLayer(nn.Module):
    """Grouped pointwise Conv1d + BN + SiLU + channel shuffle, plus a repeated-channel shortcut."""

    def __init__(self, in_features: int, out_features: int, groups: int, drop_path_rate: float) -> None:
        super().__init__()
        self.groups = groups
        self.out_features = out_features
        self.drop_path_rate = drop_path_rate
        self.conv = nn.Conv1d(in_features, out_features, 1, groups=groups, bias=False)
        self.bn = BatchNormAct(out_features, dims=1)
        self.bn_sc = BatchNormAct(out_features, dims=1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        b, c, t = y.shape
        y = y.view(b, self.groups, c // self.groups, t).transpose(1, 2).reshape(b, c, t)
        return drop_path(y, self.drop_path_rate, self.training) + self.bn_sc(repeat_channels(x, self.out_features))


class Cortex(nn.Module):
    def __init__(self, in_features: int, features: tuple, groups: int, drop_path_rate: float) -> None:
        super().__init__()
        widths = (in_features, *features)
        self.layers = nn.Sequential(
            *[CortexLayer(widths[i], widths[i + 1], groups, drop_path_rate) for i in range(len(features))]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Readout(nn.Module):
    """Dropout1d then a grouped pointwise Conv1d to ceil(N/groups)*groups rows, cut to N, softplus."""

    def __init__(self, in_features: int, n_neurons: int, groups: int, softplus_beta: float, drop_rate: float):
        super().__init__()
        self.n_neurons = n_neurons
        rows = math.ceil(n_neurons / groups) * groups
        self.layer = nn.Sequential(nn.Dropout1d(drop_rate), nn.Conv1d(in_features, rows, 1, groups=groups))
        self.softplus = nn.Softplus(beta=softplus_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.softplus(self.layer(x)[:, : self.n_neurons])


def stack_inputs(video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
    """(B, T, 36, 64) video + (B, 4, T) behaviour -> (B, 5, T, 64, 64) in raw units, as the network expects.

    The frame goes to rows 14..49 of a zero canvas; each behaviour value fills the whole plane of its frame.
    """
    b, t, h, w = video.shape
    canvas = video.new_zeros((b, 1, t, CANVAS, CANVAS))
    canvas[:, 0, :, CANVAS_TOP : CANVAS_TOP + h, :w] = video
    planes = behaviour.to(video.dtype)[:, :, :, None, None].expand(b, behaviour.shape[1], t, CANVAS, CANVAS)
    return torch.cat([canvas, planes], dim=1)


class DwiseNeuro(MultiMouseModel):
    """The published DwiseNeuro network; constructor arguments as in the checkpoints' `nn_module` kwargs.

    forward(video (B,T,36,64), behaviour (B,4,T), mouse) -> (B, N, T), T >= 31: every window ending at frame
    30..T-1, predictions averaged per frame. `memory_budget_bytes` bounds the activations of one chunk of windows
    (default: 2 GiB on a CPU, half of the free GPU memory on CUDA).
    """

    architecture = "dwiseneuro"
    windowing = WINDOW
    context_frames = WINDOW.reach
    train_clip_frames = WINDOW.reach + 1

    def __init__(self, readout_outputs, memory_budget_bytes: int | None = None, **kwargs) -> None:
        super().__init__()
        kw = with_defaults(PAPER_KWARGS, kwargs, "DwiseNeuro")
        kw["core_features"], kw["spatial_strides"] = tuple(kw["core_features"]), tuple(kw["spatial_strides"])
        kw["cortex_features"] = tuple(kw["cortex_features"])
        self.kwargs = {"readout_outputs": tuple(int(n) for n in readout_outputs), **kw}
        self.neuron_counts = list(self.kwargs["readout_outputs"])
        self.memory_budget_bytes = memory_budget_bytes
        self.core = DepthwiseCore(kw)
        core_out = kw["core_features"][-1]
        self.cortex = Cortex(core_out, kw["cortex_features"], kw["groups"], kw["drop_path_rate"])
        self.readouts = nn.ModuleList(
            Readout(kw["cortex_features"][-1], n, kw["groups"], kw["softplus_beta"], kw["drop_rate"])
            for n in self.neuron_counts
        )

    # -- one batch of stacked windows ------------------------------------------------------------------------
    def forward_stacked(self, x: torch.Tensor, mouse: int) -> torch.Tensor:
        """Stacked windows (B, 5, 16, 64, 64) -> responses (B, N, 16); the published network call."""
        z = self.core(x).mean(dim=(3, 4))  # (B, C, 16)
        return self.readouts[mouse](self.cortex(z))

    def train_forward(self, video, behaviour, mouse):
        """A 31-frame clip -> (pred (B, N, 16), frame_index = 0, 2, ..., 30): the one window ending at frame 30."""
        mouse = self.check_mouse(mouse)
        check_encoder_inputs(video, behaviour, min_frames=self.train_clip_frames)
        idx = torch.arange(0, self.train_clip_frames, WINDOW.step, device=video.device)
        x = stack_inputs(video[:, idx], behaviour[:, :, idx])
        return self.forward_stacked(x, mouse), idx

    # -- many windows ------------------------------------------------------------------------------------------
    def window_bytes(self) -> int:
        """Rough peak activation memory of one window in float32, forward with saved activations (bytes)."""
        kw = self.kwargs
        size, total = CANVAS, 0
        for k, s in enumerate(kw["spatial_strides"]):
            mid = kw["core_features"][k] * kw["expansion_ratio"]
            out = math.ceil(size / s)
            total += mid * (size * size + 4 * out * out) + 3 * kw["core_features"][k] * size * size
            size = out
        return 4 * WINDOW.frames * total

    def windows_per_chunk(self) -> int:
        """Windows per batch: `memory_budget_bytes`, or by default 2 GiB on a CPU and half of the GPU memory that
        is free now (the optimiser's own tensors and other models on the GPU are then already counted)."""
        budget = self.memory_budget_bytes
        if budget is None:
            device = self.readouts[0].layer[1].weight.device
            budget = torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else 2 << 30
        return max(1, int(budget // self.window_bytes()))

    def predict_windows(self, video, behaviour, mouse: int, ends) -> torch.Tensor:
        """Predict the windows ending at frames `ends` (each 30..T-1) -> (B, len(ends), N, 16).

        Prediction k, j belongs to frame ends[k] - 30 + 2 j. Windows run batched in chunks within the memory budget;
        with gradients enabled in eval mode each chunk is recomputed in the backward pass instead of kept.
        """
        mouse = self.check_mouse(mouse)
        check_encoder_inputs(video, behaviour, min_frames=self.train_clip_frames)
        ends = torch.as_tensor(ends, dtype=torch.long, device=video.device).reshape(-1)
        t = video.shape[1]
        if len(ends) == 0 or int(ends.min()) < WINDOW.reach or int(ends.max()) >= t:
            raise ValueError(f"window end frames must lie in {WINDOW.reach}..{t - 1}.")
        b, n_win = video.shape[0], len(ends)
        frames = WINDOW.frame_index(ends)  # (W, 16)
        pairs = torch.cartesian_prod(torch.arange(b, device=video.device), torch.arange(n_win, device=video.device))
        chunk = self.windows_per_chunk()
        recompute = torch.is_grad_enabled() and not self.training and len(pairs) > chunk
        flags = [p.requires_grad for p in self.parameters()]  # the backward recompute must see the same state
        outs = []
        for start in range(0, len(pairs), chunk):
            sel = pairs[start : start + chunk]
            fr = frames[sel[:, 1]]  # (w, 16)
            v = video[sel[:, 0, None], fr]  # (w, 16, 36, 64)
            beh = behaviour[sel[:, 0, None], :, fr].transpose(1, 2)  # (w, 4, 16)
            if recompute:
                outs.append(checkpoint(self._rerun_windows, v, beh, mouse, flags, use_reentrant=False))
            else:
                outs.append(self._run_windows(v, beh, mouse))
        pred = torch.cat(outs)  # (B*W, N, 16)
        return pred.reshape(b, n_win, *pred.shape[1:])

    def _run_windows(self, video: torch.Tensor, behaviour: torch.Tensor, mouse: int) -> torch.Tensor:
        return self.forward_stacked(stack_inputs(video, behaviour), mouse)

    def _rerun_windows(self, video, behaviour, mouse: int, flags: list[bool]) -> torch.Tensor:
        """`_run_windows` in eval mode with the given weight flags, also when recomputed during backward
        (by then a caller such as BoundEncoder may have restored training mode or unfrozen the weights)."""
        with module_state(self, training=False, requires_grad=flags):
            return self._run_windows(video, behaviour, mouse)

    def forward(self, video, behaviour, mouse):
        """Whole trials (B, T, 36, 64), (B, 4, T), T >= 31 -> (B, N, T): all windows, averaged per frame."""
        t = video.shape[1]
        ends = torch.arange(WINDOW.reach, t, device=video.device)
        pred = self.predict_windows(video, behaviour, mouse, ends)  # (B, W, N, 16)
        return average_windows(pred, ends, t)


def average_windows(pred: torch.Tensor, ends: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Window predictions (B, W, N, 16) ending at `ends` -> per-frame mean (B, N, n_frames) (uncovered frames 0)."""
    b, w, n, k = pred.shape
    idx = WINDOW.frame_index(ends).reshape(-1)  # (W*16,)
    total = pred.new_zeros((b, n, n_frames))
    total = total.index_add(2, idx, pred.permute(0, 2, 1, 3).reshape(b, n, w * k))
    count = pred.new_zeros(n_frames).index_add(0, idx, pred.new_ones(idx.shape))
    return total / count.clamp(min=1)
