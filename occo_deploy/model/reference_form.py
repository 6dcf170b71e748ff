"""The reference's forward pass, step by step as it is written there, on our modules' parameters.

``net.OCCO`` computes the same function in another order (feature maps instead of tokens, the
attention from the Gram matrix, the output projection folded in; see its docstring), which is less
work. Issue 5's speed goal is stated against *the reference network* run eagerly, so that is what
``benchmarks/`` time as the baseline; timing our own rewrite instead would credit the baseline with
our optimisations. This module is that baseline, and a second check that the rewrite is faithful:
the golden tests run both.

Written for torch eager only (it is never exported): tokens (N x HW x C), ``nn.Linear`` and
``nn.LayerNorm`` on tokens, the per-head reshapes with their ``contiguous()`` copies, full-resolution
keys and values, ``cat`` before the output projection, the fourth stage's discarded max pool. It
reads the parameters of an ``OCCO`` instance, so any checkpoint that loads there runs here too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occo_deploy.model import net


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def _cross_attention(ca: net.CrossAttention, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head linear attention on tokens; branch 1's queries see branch 2's context and back."""
    b, n, c = x1.shape
    h = ca.num_heads
    scale = (c // h) ** -0.5

    def heads(x: torch.Tensor) -> torch.Tensor:  # B x heads x N x head_dim
        return x.reshape(b, -1, h, c // h).permute(0, 2, 1, 3).contiguous()

    def kv(x: torch.Tensor, linear: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = linear(x).reshape(b, -1, 2, h, c // h).permute(2, 0, 3, 1, 4).contiguous()
        return k, v

    q1, q2 = heads(x1), heads(x2)
    k1, v1 = kv(x1, ca.kv1)
    k2, v2 = kv(x2, ca.kv2)
    ctx1 = ((k1.transpose(-2, -1) @ v1) * scale).softmax(dim=-2)
    ctx2 = ((k2.transpose(-2, -1) @ v2) * scale).softmax(dim=-2)
    y1 = (q1 @ ctx2).permute(0, 2, 1, 3).reshape(b, n, c).contiguous()
    y2 = (q2 @ ctx1).permute(0, 2, 1, 3).reshape(b, n, c).contiguous()
    return y1, y2


def _fusion(block: net.Attention_fusion, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x1.shape
    cw = block.channel_weight
    x = torch.cat((x1, x2), dim=1)
    pooled = torch.cat((F.adaptive_avg_pool2d(x, 1).view(n, 2 * c), F.adaptive_max_pool2d(x, 1).view(n, 2 * c)), 1)
    gates = cw.mlp(pooled).reshape(n, 2, c, 1, 1).permute(1, 0, 2, 3, 4)
    sw = block.space_weight1.mlp
    c1, c2 = _to_tokens(gates[0] * x1), _to_tokens(gates[1] * x2)
    s1, s2 = _to_tokens(sw(x1) * x1), _to_tokens(sw(x2) * x2)
    t1, t2 = _to_tokens(x1), _to_tokens(x2)

    cross = block.cross
    c1 = cross.act(cross.channel_proj3(c1))
    c2 = cross.act(cross.channel_proj4(c2))
    c1, c2 = _cross_attention(cross.cross_attn, c1, c2)
    norm1, norm2 = cross.norm1, cross.norm2
    out1 = F.layer_norm(t1 + cross.end_proj1(torch.cat((s1, c1), dim=-1)), norm1.normalized_shape,
                        norm1.weight, norm1.bias, norm1.eps)
    out2 = F.layer_norm(t2 + cross.end_proj2(torch.cat((s2, c2), dim=-1)), norm2.normalized_shape,
                        norm2.weight, norm2.bias, norm2.eps)

    merge = torch.cat((out1, out2), dim=-1)
    merge = merge.permute(0, 2, 1).reshape(n, 2 * c, h, w).contiguous()
    emb = block.channel_emb
    return emb.norm(emb.residual(merge) + emb.channel_embed(merge))


def _up(block: net.unetUp, skip: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
    up = F.interpolate(deep, scale_factor=2.0, mode="bilinear", align_corners=True)
    dh, dw = skip.shape[2] - up.shape[2], skip.shape[3] - up.shape[3]
    if dh or dw:  # split as the reference does: the odd pixel goes to the bottom / right
        up = F.pad(up, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="reflect")
    x = block.relu(block.conv1(torch.cat([skip, up], 1)))
    return block.relu(block.conv2(x))


def reference_forward(model: net.OCCO, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """The raw fused luminance, as the reference's ``occo.forward(y, ir)`` computes it."""

    def encode(stages: list[net.DownsampleLayer], x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in stages:
            out = stage.Conv_BN_ReLU_2(x)
            x = F.max_pool2d(out, 2, 2)  # the reference pools every stage, the last one for nothing
            feats.append(out)
        return feats

    v = encode([model.v1, model.v2, model.v3, model.v4], y)
    i = encode([model.i1, model.i2, model.i3, model.i4], ir)
    fused = [_fusion(block, a, b) for block, a, b in
             zip((model.fusion1, model.fusion2, model.fusion3, model.fusion4), v, i)]
    up3 = _up(model.up_concat3, fused[2], fused[3])
    up2 = _up(model.up_concat2, fused[1], up3)
    up1 = _up(model.up_concat1, fused[0], up2)
    return model.final(up1)


class ReferenceFormNet(torch.nn.Module):
    """An ``OCCO`` whose forward is the reference's; drop-in for ``FusionPipeline(net)``."""

    def __init__(self, model: net.OCCO) -> None:
        super().__init__()
        self.model = model

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return reference_forward(self.model, y, ir)
