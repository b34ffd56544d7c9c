"""What an RRDBNet file's tensor shapes say about its network (torch-free: the registry's scan reads only
safetensors headers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RRDBSpec:
    """Everything about a file's network that its tensor shapes say."""

    num_feat: int  # channels of the trunk (64 in the published models)
    num_block: int  # RRDBs in the trunk (23 in the published models)
    num_grow_ch: int  # channels each dense-block conv adds (32)
    num_upsample: int  # x2 nearest-upsample stages (2 = the x4 body)
    unshuffle: int  # 1, or the pixel-unshuffle factor of Real-ESRGAN's x2 (2) and x1 (4) models
    in_ch: int = 3
    out_ch: int = 3

    @property
    def scale(self) -> int:
        """Output size / input size."""
        return 2**self.num_upsample // self.unshuffle

    @property
    def receptive_radius(self) -> int:
        """How many input pixels, at most, each side of an output pixel can influence it: the context a tile
        needs for its inner part to match the whole image's result. Every 3x3 conv at input resolution adds
        one (in units of the unshuffled grid, whose pixels are ``unshuffle`` input pixels wide); convs after
        an upsample add a fraction, counted as one each to stay an upper bound."""
        trunk_convs = 1 + self.num_block * 3 * 5 + 1
        return (trunk_convs + self.num_upsample + 2) * self.unshuffle
