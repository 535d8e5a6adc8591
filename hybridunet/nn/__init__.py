"""The parts that plug together into a UNet, one registry per family."""

from hybridunet.nn.blocks import BLOCKS
from hybridunet.nn.bottlenecks import BOTTLENECKS
from hybridunet.nn.padding import pad_to_multiple
from hybridunet.nn.skips import SKIPS
from hybridunet.nn.upsamplers import UPSAMPLERS

__all__ = ["BLOCKS", "BOTTLENECKS", "SKIPS", "UPSAMPLERS", "pad_to_multiple"]
