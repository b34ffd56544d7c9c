"""ESRGAN's RRDBNet (Wang et al. 2018), in the parameter names of Real-ESRGAN / BasicSR
(``basicsr/archs/rrdbnet_arch.py``), which ``loading`` converts every supported file to.

Why our own copy rather than ``spandrel``: spandrel's package imports all of its architectures on import, one
of them imports torchvision, and no torchvision build loads with the pinned torch here. RRDBNet is small and
has been stable since 2018; this module is the whole network.

Shape of the net: (optional pixel-unshuffle) -> ``conv_first`` -> ``num_block`` RRDBs -> ``conv_body``, added
to the first features -> ``num_upsample`` times (nearest x2 -> conv -> LeakyReLU) -> ``conv_hr`` -> LeakyReLU
-> ``conv_last``. Real-ESRGAN's x2 and x1 models keep the x4 body and fold the input's pixels into channels
first (pixel-unshuffle by 2 or 4), so their first conv takes 12 or 48 channels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ablerefusal.worker.engine.upscalers.spec import RRDBSpec


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier conv's output; scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # the paper's residual scaling: keeps a deep trunk trainable


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, then the same scaled residual around them."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """Takes RGB in [0, 1] (N, 3, H, W), returns (N, 3, H x scale, W x scale), not clamped. H and W must be
    multiples of ``spec.unshuffle`` (``tiling`` pads them)."""

    def __init__(self, spec: RRDBSpec) -> None:
        super().__init__()
        self.spec = spec
        f = spec.num_feat
        self.conv_first = nn.Conv2d(spec.in_ch * spec.unshuffle**2, f, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(f, spec.num_grow_ch) for _ in range(spec.num_block)))
        self.conv_body = nn.Conv2d(f, f, 3, 1, 1)
        # conv_up1, conv_up2, … as attributes, so the state dict has BasicSR's names.
        for n in range(1, spec.num_upsample + 1):
            self.add_module(f"conv_up{n}", nn.Conv2d(f, f, 3, 1, 1))
        self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_last = nn.Conv2d(f, spec.out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.spec.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for n in range(1, self.spec.num_upsample + 1):
            conv = getattr(self, f"conv_up{n}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
