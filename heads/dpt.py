"""DPT dense-prediction head (Ranftl et al. 2021, "Vision Transformers for Dense Prediction") as used by VGGT.

Four chosen aggregator layers are turned back into images ("reassembly") at 4x, 2x, 1x and 1/2x the patch
grid, refined coarse-to-fine by fusion blocks, upsampled to the input resolution and mapped to per-pixel
values plus a confidence:

    tokens_l [B, S, P_0 + h·w, C_in] ──LayerNorm──► [B·S, C_in, h, w] ──1x1 conv──► (+ UV sin/cos embedding)
        ──resample (x4 deconv | x2 deconv | identity | /2 conv)──► 3x3 conv to F channels
    fusion: f4 = RF4(r4) ; f3 = RF3(f4, r3) ; f2 = RF2(f3, r2) ; f1 = RF1(f2, r1)      (each ends with x2 / resize)
    out = conv3x3(f1) ──bilinear to H x W──► (+ UV embedding) ──conv3x3, ReLU, conv1x1──► [B·S, D, H, W]
    values = act(out[:, :D-1]), confidence = conf_act(out[:, D-1])

Points head: ``output_dim=4, activation="inv_log"``; depth head: ``output_dim=2, activation="exp"``; both
``conf_activation="expp1"``. Parameter names follow the official VGGT ``DPTHead`` (``norm``, ``projects``,
``resize_layers``, ``scratch.layer{i}_rn``, ``scratch.refinenet{i}.resConfUnit{1,2}``, ``scratch.output_conv{1,2}``),
so VGGT checkpoints load strictly. ``DPTHead(**kwargs)`` takes the official constructor arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mum.layers import gather_chunks

from .activations import activate_head

__all__ = [
    "DPTHead",
    "FeatureFusionBlock",
    "ResidualConvUnit",
    "build_dpt_head",
    "uv_grid",
    "uv_position_embedding",
]

# Largest number of output elements handed to one F.interpolate call (its kernels index with int32).
_INTERPOLATE_MAX_ELEMENTS = 1_610_612_736


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` of ``[N, C, h, w]`` to ``[N, C, *size]``, split over ``N``
    when the output would be too large for one kernel call."""
    size = (int(size[0]), int(size[1]))
    elements = size[0] * size[1] * x.shape[0] * x.shape[1]
    if elements <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = torch.chunk(x, chunks=elements // _INTERPOLATE_MAX_ELEMENTS + 1, dim=0)
    return torch.cat([F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in chunks], dim=0)


# ----------------------------------------------------------------------------------------------------------------
# UV positional embedding
# ----------------------------------------------------------------------------------------------------------------


def uv_grid(
    width: int,
    height: int,
    aspect_ratio: float | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Cell-centre coordinates of a ``height x width`` grid on the image plane normalised by its diagonal.

    With aspect ratio ``a = W / H`` the image spans ``[-a/√(1+a²), a/√(1+a²)] x [-1/√(1+a²), 1/√(1+a²)]``
    (the corners lie on the unit circle); cell centres sit ``(n - 1) / n`` of the way to the edges.

    Returns:
        ``[height, width, 2]`` with ``[..., 0] = u`` (horizontal) and ``[..., 1] = v`` (vertical).
    """
    if aspect_ratio is None:
        aspect_ratio = width / height
    diagonal = (aspect_ratio**2 + 1.0) ** 0.5
    span_u, span_v = aspect_ratio / diagonal, 1.0 / diagonal
    u = torch.linspace(-span_u * (width - 1) / width, span_u * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(
        -span_v * (height - 1) / height, span_v * (height - 1) / height, height, dtype=dtype, device=device
    )
    uu, vv = torch.meshgrid(u, v, indexing="xy")
    return torch.stack((uu, vv), dim=-1)


def _sincos(positions: torch.Tensor, channels: int, omega_0: float) -> torch.Tensor:
    """``[M] -> [M, channels]``: ``[sin(p ω_k), cos(p ω_k)]`` with ``ω_k = omega_0^(-k / (channels/2))``."""
    if channels % 2:
        raise ValueError(f"sin/cos embedding needs an even channel count, got {channels}")
    half = channels // 2
    omega = 1.0 / omega_0 ** (torch.arange(half, dtype=torch.float32, device=positions.device) / (half))
    angles = positions.reshape(-1, 1) * omega
    return torch.cat((torch.sin(angles), torch.cos(angles)), dim=-1).float()


def uv_position_embedding(
    height: int, width: int, channels: int, aspect_ratio: float, omega_0: float = 100.0, device=None
) -> torch.Tensor:
    """VGGT's dense positional embedding ``[channels, height, width]`` (float32).

    Channels are ``[sin(u ω), cos(u ω), sin(v ω), cos(v ω)]``, each ``channels / 4`` wide, on :func:`uv_grid`.
    """
    if channels % 4:
        raise ValueError(f"UV embedding needs channels divisible by 4, got {channels}")
    grid = uv_grid(width, height, aspect_ratio=aspect_ratio, dtype=torch.float32, device=device)
    u, v = grid[..., 0].reshape(-1), grid[..., 1].reshape(-1)
    embedding = torch.cat((_sincos(u, channels // 2, omega_0), _sincos(v, channels // 2, omega_0)), dim=-1)
    return embedding.reshape(height, width, channels).permute(2, 0, 1)


# ----------------------------------------------------------------------------------------------------------------
# Refinement blocks
# ----------------------------------------------------------------------------------------------------------------


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``y = relu(x) + conv2(relu(conv1(relu(x))))``.

    The skip path carries ``relu(x)``, not ``x``: the official VGGT code applies an in-place ReLU to its input
    before the convolutions, so that is what its checkpoints were trained with.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, F, h, w] -> [N, F, h, w]``."""
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FeatureFusionBlock(nn.Module):
    """RefineNet-style fusion: ``out_conv(resize(RCU2(coarse + RCU1(skip))))``.

    ``forward(coarse)`` (no skip, the deepest level) or ``forward(coarse, skip)``; the result is resized to
    ``size`` if given, else upsampled 2x (bilinear, ``align_corners=True``), then mixed by a 1x1 convolution.
    """

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, coarse: torch.Tensor, skip: torch.Tensor | None = None, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """``[N, F, h, w]`` (+ skip of the same shape) -> ``[N, F, *size]`` or ``[N, F, 2h, 2w]``."""
        x = coarse
        if skip is not None:
            if not self.has_residual:
                raise ValueError("this fusion block was built without a skip input")
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (x.shape[-2] * 2, x.shape[-1] * 2)
        return self.out_conv(resize_bilinear(x, size))


class _Scratch(nn.Module):
    """The decoder trunk of DPT (named ``scratch`` in the official code): per-level 3x3 convolutions to a common
    width (``layer{i}_rn``), four fusion blocks (``refinenet{i}``) and the output convolutions."""

    def __init__(self, in_channels: Sequence[int], features: int, output_dim: int, feature_only: bool) -> None:
        super().__init__()
        for level, channels in enumerate(in_channels, start=1):
            setattr(self, f"layer{level}_rn", nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False))
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        if feature_only:
            self.output_conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        else:
            hidden = 32
            self.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
            self.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, hidden, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, output_dim, kernel_size=1),
            )

    def fuse(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Four maps, finest first (``[N, C_i, h_i, w_i]``, each level half the previous resolution), fused
        coarse-to-fine -> ``[N, F', 2 h_1, 2 w_1]`` after ``output_conv1``."""
        r1, r2, r3, r4 = (getattr(self, f"layer{i}_rn")(x) for i, x in enumerate(levels, start=1))
        x = self.refinenet4(r4, size=r3.shape[-2:])
        x = self.refinenet3(x, r3, size=r2.shape[-2:])
        x = self.refinenet2(x, r2, size=r1.shape[-2:])
        x = self.refinenet1(x, r1)
        return self.output_conv1(x)


# ----------------------------------------------------------------------------------------------------------------
# The head
# ----------------------------------------------------------------------------------------------------------------


class DPTHead(nn.Module):
    """VGGT's DPT head: dense values and confidence from four aggregator layers.

    Args (official names):
        dim_in: token width of the aggregator output (``2 · embed_dim``).
        patch_size: pixels per patch side.
        output_dim: channels of the last convolution: value channels + 1 confidence channel.
        activation: value activation (``inv_log`` for points, ``exp`` for depth; see :mod:`heads.activations`).
        conf_activation: confidence activation (``expp1``).
        features: fusion width ``F``.
        out_channels: reassembly widths of the four levels.
        intermediate_layer_idx: which entries of the aggregator's token list feed the four levels.
        pos_embed: add the UV sin/cos embedding after each projection and after the final upsampling.
        feature_only: return the ``F``-channel feature map instead of activated predictions.
        down_ratio: output resolution divisor (``H / down_ratio``); 1 for the depth and point heads.
    """

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        output_dim: int = 4,
        activation: str = "inv_log",
        conf_activation: str = "expp1",
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4 or len(intermediate_layer_idx) != 4:
            raise ValueError("DPTHead needs exactly four out_channels and four intermediate_layer_idx")
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self.intermediate_layer_idx = list(intermediate_layer_idx)

        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, kernel_size=1) for c in out_channels)
        c1, c2, _, c4 = out_channels
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4),  # 4x the patch grid
                nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2),  # 2x
                nn.Identity(),  # 1x
                nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1),  # 1/2x
            ]
        )
        self.scratch = _Scratch(out_channels, features, output_dim, feature_only)

    def forward(
        self,
        aggregated_tokens_list: Sequence[torch.Tensor],
        images: torch.Tensor,
        patch_start_idx: int,
        frames_chunk_size: int | None = 8,
        output_device: torch.device | str | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Dense predictions for every frame, ``frames_chunk_size`` frames at a time (memory linear in frames).

        Args:
            aggregated_tokens_list: per-layer tokens ``[B, S, patch_start_idx + h·w, dim_in]``; the entries named
                by ``intermediate_layer_idx`` are read, patch tokens row-major from ``patch_start_idx`` on.
            images: ``[B, S, 3, H, W]``; only the shape is used (``h = H // patch_size``, ``w = W // patch_size``).
            patch_start_idx: number of special (camera/register) tokens before the patches.
            frames_chunk_size: frames per chunk; ``None`` or ``>= S`` runs all frames at once.
            output_device: where the outputs are gathered (default: the tokens' device); each chunk's output is
                copied into one preallocated tensor there as soon as it is made, so the device running the head
                holds one chunk's maps at a time.

        Returns:
            ``(values [B, S, H', W', output_dim - 1], confidence [B, S, H', W'])`` with ``H' = H / down_ratio``,
            or features ``[B, S, F, H', W']`` when ``feature_only``.
        """
        num_frames = images.shape[1]
        step = num_frames if frames_chunk_size is None else frames_chunk_size
        if step <= 0:
            raise ValueError(f"frames_chunk_size must be positive, got {frames_chunk_size}")
        chunks = (
            self._forward_frames(aggregated_tokens_list, images.shape, patch_start_idx, start, min(start + step, num_frames))
            for start in range(0, num_frames, step)
        )
        return gather_chunks(chunks, num_frames, dim=1, device=output_device)

    def _forward_frames(
        self,
        aggregated_tokens_list: Sequence[torch.Tensor],
        image_shape: torch.Size,
        patch_start_idx: int,
        first: int,
        last: int,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The head on frames ``first:last`` of every scene."""
        batch, frames = image_shape[0], last - first
        height, width = image_shape[-2:]
        grid_h, grid_w = height // self.patch_size, width // self.patch_size

        levels = []
        for level, layer_idx in enumerate(self.intermediate_layer_idx):
            tokens = aggregated_tokens_list[layer_idx][:, first:last, patch_start_idx:]
            tokens = tokens.to(self.norm.weight.dtype)  # e.g. bf16 aggregator tokens into an fp32 head
            tokens = self.norm(tokens.reshape(batch * frames, grid_h * grid_w, tokens.shape[-1]))
            x = tokens.transpose(1, 2).reshape(batch * frames, -1, grid_h, grid_w)  # tokens -> image
            x = self.projects[level](x)
            if self.pos_embed:
                x = self._add_pos_embed(x, width / height)
            levels.append(self.resize_layers[level](x))

        x = self.scratch.fuse(levels)
        out_size = (int(grid_h * self.patch_size / self.down_ratio), int(grid_w * self.patch_size / self.down_ratio))
        x = resize_bilinear(x, out_size)
        if self.pos_embed:
            x = self._add_pos_embed(x, width / height)
        if self.feature_only:
            return x.reshape(batch, frames, *x.shape[1:])

        values, conf = activate_head(self.scratch.output_conv2(x), self.activation, self.conf_activation)
        return values.reshape(batch, frames, *values.shape[1:]), conf.reshape(batch, frames, *conf.shape[1:])

    @staticmethod
    def _add_pos_embed(x: torch.Tensor, aspect_ratio: float, ratio: float = 0.1) -> torch.Tensor:
        """``x + 0.1 · UV-embedding`` for ``x [N, C, h, w]``; the grid keeps the image's aspect ratio."""
        embedding = uv_position_embedding(x.shape[-2], x.shape[-1], x.shape[1], aspect_ratio, device=x.device)
        return x + (embedding * ratio).to(x.dtype)


def build_dpt_head(kwargs: dict) -> DPTHead:
    """Build a :class:`DPTHead` from a parity file's ``kwargs`` (official constructor arguments)."""
    return DPTHead(**kwargs)
