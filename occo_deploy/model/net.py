"""The OCCO fusion network (inference part), written for export.

Module and parameter names follow the reference code (GitHub bociic/OCCO, ``models/net.py``, class
``occo``) so that official checkpoints load with ``load_state_dict`` unchanged. The arithmetic follows
the reference too, with three deliberate differences that do not change a single output value:

* no Python branching on tensor sizes, so the graph exports with dynamic height and width;
* the reference's fourth encoder stage max-pools its output and throws it away; we skip that pool;
* ``Attention_fusion.space_weight2`` is never called by the reference (``space_weight1`` weighs both
  branches); it is kept here only so its parameters load.

and one that computes the same sums in another order (so results agree to float rounding, within
the one grey level the golden tests allow): the cross-attention works on feature maps in token
order with all heads in one masked C x C matrix, taken from the Gram matrix of its input instead of
from full-resolution keys and values; its output projection is folded into that matrix, the spatial
gate is applied after the projection instead of before, and the LayerNorm's centring is folded
into the weights that make its input (see ``AttentionContext`` and ``CrossPath_V2._centred_sum``).
That is less arithmetic and fewer full-resolution passes, in the layout CPU runtimes run fastest;
the reference's per-head views cost full-resolution reorders. ``reference_form`` keeps the
reference's own order, for the golden tests and as the speed baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Attention heads per fusion stage, as hard-coded by the reference (not recoverable from weights).
FUSION_HEADS = (4, 4, 4, 1)
#: Widths of the published model; checkpoints may use others, see ``checkpoint.infer_widths``.
DEFAULT_WIDTHS = (32, 64, 112, 160)


class ChannelWeights(nn.Module):
    """Per-channel gates for both branches from global average and max pooling."""

    def __init__(self, dim: int, reduction: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(dim * 4, dim * 4 // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(dim * 4 // reduction, dim * 2),
            nn.Sigmoid(),
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The reference pools cat(x1, x2); pooling each branch gives the same B x 4C vector
        # [mean x1 | mean x2 | max x1 | max x2] without copying both full-resolution maps.
        pooled = torch.cat((x1.mean(dim=(2, 3)), x2.mean(dim=(2, 3)), x1.amax(dim=(2, 3)), x2.amax(dim=(2, 3))), dim=1)
        gates = self.mlp(pooled)  # B x 2C: first C gate x1, next C gate x2
        w1, w2 = gates.unflatten(1, (2, self.dim)).unbind(1)
        return w1[:, :, None, None], w2[:, :, None, None]


class SpatialWeight(nn.Module):
    """A per-pixel gate from a two-layer 1x1 convolution."""

    def __init__(self, dim: int, reduction: int = 1) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, dim // reduction, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _pointwise(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """A token-wise ``nn.Linear`` applied to an N x C x H x W map, as the 1x1 convolution it equals."""
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


def centring(dim: int) -> torch.Tensor:
    """P = I - 11^T / C: ``P x`` subtracts the channel mean, a linear map that folds into weights."""
    return torch.eye(dim) - 1.0 / dim


class ChannelLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of each pixel of an N x C x H x W map *already centred*.

    Centring is linear, so ``CrossPath_V2`` folds it into the weights of the maps whose sum this
    normalises (``centring``), and what is left here is the second pass of the reference's two-pass
    variance and the affine. That spares a full-resolution channel reduction and a subtraction.
    Same parameters (and state-dict keys) as the reference's token-wise LayerNorm. Its own class so
    the exported nodes carry it in their metadata: precision transforms keep it in FP32.
    """

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        var = (centred * centred).mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def tokens(x: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x HW x C, the reference's token layout.

    On a CPU runtime whose convolutions keep channels last (OpenVINO's INT8 and BF16 kernels do),
    this permute is the memory order the map already has, so it costs nothing; the N x heads x
    head_dim x HW view of an earlier version of this file forced a full-resolution reorder per tensor.
    """
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def from_tokens(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """N x HW x C -> N x C x H x W, with the size of ``like``."""
    return t.reshape(like.shape[0], like.shape[2], like.shape[3], like.shape[1]).permute(0, 3, 1, 2)


class AttentionContext(nn.Module):
    """The attention matrix of one branch: softmax over keys of (K^T V) * scale, per head.

    K and V are the two halves of a 1x1 projection of the same map X (K = X W_k^T, V = X W_v^T on
    tokens), so ``K^T V = W_k (X^T X) W_v^T``: the C x C sum over every pixel is taken once on X, and
    the full-resolution K and V maps are never computed (biases, absent from the reference's model,
    add rank-one terms). All heads come out of one C x C matrix whose off-head blocks are set to
    -inf before the softmax, which makes them exactly 0 and leaves each head's block as the
    reference computes it (softmax over the key axis, its ``softmax(dim=-2)``).

    The sum runs over H*W products (307 200 at 640x480) and exceeds the FP16 range, so this is its
    own class that precision transforms find in the export metadata and keep in FP32.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.scale = (dim // num_heads) ** -0.5
        head = torch.arange(dim) // (dim // num_heads)
        off_head = torch.where(head[:, None] == head[None, :], 0.0, float("-inf"))
        # Not in the state dict: official checkpoints have no such key.
        self.register_buffer("off_head", off_head if num_heads > 1 else None, persistent=False)

    def forward(self, x: torch.Tensor, kv: nn.Linear) -> torch.Tensor:
        """x: N x C x H x W; kv: the Linear whose output is [k | v] -> N x C x C (keys along rows)."""
        dim = x.shape[1]
        w_k, w_v = kv.weight[:dim], kv.weight[dim:]
        t = tokens(x)
        gram = w_k @ (t.transpose(1, 2) @ t) @ w_v.transpose(0, 1)
        if kv.bias is not None:  # sum_p (W_k x_p + b_k)(W_v x_p + b_v)^T
            b_k, b_v = kv.bias[:dim], kv.bias[dim:]
            total = t.sum(dim=1)  # N x C
            k_sum, v_sum = total @ w_k.transpose(0, 1), total @ w_v.transpose(0, 1)
            gram = (gram + k_sum[:, :, None] * b_v + b_k[:, None] * v_sum[:, None, :]
                    + t.shape[1] * (b_k[:, None] * b_v))
        gram = gram * self.scale
        if self.off_head is not None:
            gram = gram + self.off_head
        return gram.softmax(dim=-2)


class CrossAttention(nn.Module):
    """Linear ("efficient") attention across the two branches.

    Keys and values of one branch are reduced to a C x C attention matrix (``AttentionContext``);
    the other branch's features are the queries, and the reference's output for them is
    ``tokens(q) @ A``. Cost is linear in the pixel count, which is why the first stage can run at
    full resolution. ``forward`` returns the two matrices; ``CrossPath_V2`` applies them.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.context = AttentionContext(dim, num_heads)
        self.kv1 = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.kv2 = nn.Linear(dim, dim * 2, bias=qkv_bias)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention matrices (A1 from branch 1's keys, A2 from branch 2's): the reference
        attends branch 1's queries with A2 and branch 2's with A1."""
        return self.context(x1, self.kv1), self.context(x2, self.kv2)


class CrossPath_V2(nn.Module):  # the reference's name: part of the state-dict keys
    """Channel-gated features attend across branches; spatially gated ones join them; LayerNorm.

    Works on N x C x H x W maps; the reference's per-token Linear and LayerNorm act per pixel here.
    """

    def __init__(self, dim: int, reduction: int = 1, num_heads: int = 1) -> None:
        super().__init__()
        self.channel_proj3 = nn.Linear(dim, dim)
        self.channel_proj4 = nn.Linear(dim, dim)
        self.act = nn.ReLU(inplace=True)
        self.end_proj1 = nn.Linear(dim * 2, dim)
        self.end_proj2 = nn.Linear(dim * 2, dim)
        self.cross_attn = CrossAttention(dim // reduction, num_heads=num_heads)
        self.norm1 = ChannelLayerNorm(dim)
        self.norm2 = ChannelLayerNorm(dim)

    @staticmethod
    def _centred_sum(proj: nn.Linear, x: torch.Tensor, gate: torch.Tensor, q: torch.Tensor,
                     attention: torch.Tensor) -> torch.Tensor:
        """The reference's LayerNorm input ``x + proj(cat(s, q @ A))``, centred over channels.

        With ``s = gate * x`` (a per-pixel gate commutes with channel mixing), the weight split as
        [W_s | W_c] and P the centring: ``P x + gate * (P W_s) x + P b + q (A W_c^T P)``. ``A W_c^T P``
        is a C x C matrix per image, so one full-resolution product replaces two, the concatenation
        and the gated map ``s`` are never formed, and neither is the channel mean.
        """
        dim = x.shape[1]
        p = centring(dim).to(x)
        mixed = attention @ (proj.weight[:, dim:].transpose(0, 1) @ p)  # N x C x C
        attended = from_tokens(tokens(q) @ mixed, q)
        return (F.conv2d(x, p[:, :, None, None]) + gate * F.conv2d(x, (p @ proj.weight[:, :dim])[:, :, None, None])
                + (p @ proj.bias)[:, None, None] + attended)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        c1: torch.Tensor,
        c2: torch.Tensor,
        g1: torch.Tensor,
        g2: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """c1, c2: channel-gated maps; g1, g2: the N x 1 x H x W spatial gates (the reference passes
        the gated maps ``g * x``, which ``_centred_sum`` never needs)."""
        q1 = self.act(_pointwise(c1, self.channel_proj3))
        q2 = self.act(_pointwise(c2, self.channel_proj4))
        a1, a2 = self.cross_attn(q1, q2)
        out1 = self.norm1(self._centred_sum(self.end_proj1, x1, g1, q1, a2))
        out2 = self.norm2(self._centred_sum(self.end_proj2, x2, g2, q2, a1))
        return out1, out2


class ChannelEmbed(nn.Module):
    """Residual 1x1 conv plus a depthwise-separable branch, BatchNorm, on the concatenated branches."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1) -> None:
        super().__init__()
        mid = out_channels // reduction
        self.residual = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.channel_embed = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=1, bias=True),
            nn.Conv2d(mid, mid, kernel_size=3, stride=1, padding=1, bias=True, groups=mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1, bias=True),
            nn.BatchNorm2d(out_channels),
        )
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.residual(x) + self.channel_embed(x))


class Attention_fusion(nn.Module):  # the reference's name: part of the state-dict keys
    """Fuses the visible and infrared feature maps of one encoder stage."""

    def __init__(self, dim: int, reduction: int = 1, num_heads: int = 1) -> None:
        super().__init__()
        self.cross = CrossPath_V2(dim=dim, reduction=reduction, num_heads=num_heads)
        self.channel_emb = ChannelEmbed(in_channels=dim * 2, out_channels=dim, reduction=reduction)
        self.channel_weight = ChannelWeights(dim=dim, reduction=reduction)
        self.space_weight1 = SpatialWeight(dim=dim, reduction=reduction)
        # Never called: the reference weighs both branches with space_weight1. Kept for the keys.
        self.space_weight2 = SpatialWeight(dim=dim, reduction=reduction)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        w1, w2 = self.channel_weight(x1, x2)
        t1, t2 = self.cross(x1, x2, w1 * x1, w2 * x2, self.space_weight1(x1), self.space_weight1(x2))
        return self.channel_emb(torch.cat((t1, t2), dim=1))


class unetUp(nn.Module):  # the reference's name: part of the state-dict keys
    """Decoder step: upsample x2, match the skip connection's size, concatenate, two 3x3 convs."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_size, out_size, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_size, out_size, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, skip: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        # nn.UpsamplingBilinear2d in the reference: bilinear with align_corners=True.
        up = F.interpolate(deep, scale_factor=2.0, mode="bilinear", align_corners=True)
        # The skip is s tall, the upsampled map 2*floor(s/2): the reference reflect-pads the
        # difference (0 or 1) on the bottom/right. Pad amounts computed from the sizes (an ONNX Pad
        # with runtime pads) keep H and W dynamic without a shape-dependent Python branch.
        dh = skip.shape[2] - up.shape[2]
        dw = skip.shape[3] - up.shape[3]
        up = F.pad(up, (0, dw, 0, dh), mode="reflect")
        x = self.relu(self.conv1(torch.cat([skip, up], 1)))
        return self.relu(self.conv2(x))


class DownsampleLayer(nn.Module):
    """Encoder stage: two conv-BN-ReLU, then a 2x2 max pool for the next stage."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.Conv_BN_ReLU_2 = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Conv_BN_ReLU_2(x)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2, 2)


class OCCO(nn.Module):
    """Dual-branch U-Net: ``forward(y, ir)`` takes visible luminance and infrared, N x 1 x H x W in [0, 1].

    Returns the raw fused luminance (unnormalised; the pipeline min-max normalises it per image).
    """

    def __init__(self, nb_filter: tuple[int, int, int, int] | list[int] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        f = list(nb_filter)
        self.widths = tuple(f)
        self.v1 = DownsampleLayer(1, f[0])
        self.v2 = DownsampleLayer(f[0], f[1])
        self.v3 = DownsampleLayer(f[1], f[2])
        self.v4 = DownsampleLayer(f[2], f[3])
        self.i1 = DownsampleLayer(1, f[0])
        self.i2 = DownsampleLayer(f[0], f[1])
        self.i3 = DownsampleLayer(f[1], f[2])
        self.i4 = DownsampleLayer(f[2], f[3])
        self.fusion1 = Attention_fusion(dim=f[0], num_heads=FUSION_HEADS[0])
        self.fusion2 = Attention_fusion(dim=f[1], num_heads=FUSION_HEADS[1])
        self.fusion3 = Attention_fusion(dim=f[2], num_heads=FUSION_HEADS[2])
        self.fusion4 = Attention_fusion(dim=f[3], num_heads=FUSION_HEADS[3])
        self.up_concat3 = unetUp(f[3] + f[2], f[2])
        self.up_concat2 = unetUp(f[2] + f[1], f[1])
        self.up_concat1 = unetUp(f[1] + f[0], f[0])
        self.final = nn.Conv2d(f[0], 1, 1)

    @staticmethod
    def _encode(stages: list[DownsampleLayer], x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k, stage in enumerate(stages):
            if k:
                x = stage.pool(x)
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        v = self._encode([self.v1, self.v2, self.v3, self.v4], y)
        i = self._encode([self.i1, self.i2, self.i3, self.i4], ir)
        fu1 = self.fusion1(v[0], i[0])
        fu2 = self.fusion2(v[1], i[1])
        fu3 = self.fusion3(v[2], i[2])
        fu4 = self.fusion4(v[3], i[3])
        up3 = self.up_concat3(fu3, fu4)
        up2 = self.up_concat2(fu2, up3)
        up1 = self.up_concat1(fu1, up2)
        return self.final(up1)
