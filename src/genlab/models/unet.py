"""The U-Net of diffusion models (Ho et al. 2020): it only predicts.

Given noisy images x_t, their timesteps t and (optionally) class labels, it returns a tensor
shaped like x_t; what that tensor means (noise, clean image or velocity) and how the noise is
scheduled live outside, in `genlab.diffusion` and the `ddpm` family.

Layout, for channel multipliers [1, 2, 2] on 28x28 images (levels 28, 14, 7):

    stem 3x3 conv -> [ResBlock x res_blocks (+ attention) -> stride-2 conv] per level
    -> middle: ResBlock, attention, ResBlock at the lowest resolution
    -> [ResBlock x (res_blocks + 1) on skip-concatenated features (+ attention) -> upsample]
    -> GroupNorm, SiLU, 3x3 conv (zero-initialized: the untrained net predicts 0)

Residual blocks use group norm and add a projection of the timestep embedding (sinusoidal,
then an MLP) plus a learned class embedding; index `num_classes` is the "no label" class of
classifier-free guidance. Upsampling goes to the exact size of the matching skip connection, so
odd sizes (7 -> 14 is fine; 7 -> 4 -> 7 too) work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps: (B,) -> (B, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, + embedding, GroupNorm -> SiLU -> dropout -> conv, + skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, groups: int, head_channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, H*W, c/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, c/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Level(nn.Module):
    """The residual blocks (each optionally followed by attention) of one resolution."""

    def __init__(self, chans: list[tuple[int, int]], emb_dim, groups, dropout, attn, head_ch):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(a, b, emb_dim, groups, dropout) for a, b in chans)
        self.attns = nn.ModuleList(
            Attention(b, groups, head_ch) if attn else nn.Identity() for _, b in chans
        )


class UNet(nn.Module):
    """Noise-prediction U-Net: (x_t (B, C, H, W), t (B,), labels (B,) or None) -> (B, C, H, W)."""

    def __init__(
        self,
        in_channels: int,
        *,
        channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        res_blocks: int = 1,
        attention: tuple[int, ...] = (2,),
        head_channels: int = 32,
        groups: int = 8,
        dropout: float = 0.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        emb_dim = 4 * channels
        self.channels = channels
        self.time_mlp = nn.Sequential(
            nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        # one extra row: the "no label" class used for unconditional predictions
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        levels = len(widths)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c = [channels], channels
        for i, w in enumerate(widths):
            chans = []
            for _ in range(res_blocks):
                chans.append((c, w))
                c = w
                skips.append(c)
            self.down.append(Level(chans, emb_dim, groups, dropout, i in attention, head_channels))
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb_dim, groups, dropout)
        self.mid_attn = Attention(c, groups, head_channels)
        self.mid2 = ResBlock(c, c, emb_dim, groups, dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            chans = []
            for _ in range(res_blocks + 1):
                chans.append((c + skips.pop(), w))
                c = w
            self.up.append(Level(chans, emb_dim, groups, dropout, i in attention, head_channels))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out_norm = nn.GroupNorm(groups, c)
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels))  # (B, emb_dim)
        if self.label_emb is not None and labels is not None:
            emb = emb + self.label_emb(labels)
        h = self.stem(x)  # (B, channels, H, W)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, c, ceil(H/2), ceil(W/2))
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsample):  # conv at the low resolution (4x cheaper), then 2x nearest
                h = F.interpolate(self.upsample[i](h), size=skips[-1].shape[-2:], mode="nearest")
        return self.out(F.silu(self.out_norm(h)))  # (B, C, H, W)
