"""ResNet-18: the narrow width of Ash & Adams' code (``resnet18``) and the standard CIFAR width.

The layout follows the authors' ``resnet.py`` (github.com/JordanAsh/warm_start), itself the common CIFAR
ResNet: a 3x3 stem conv (no bias) + BatchNorm + ReLU, four stages of two BasicBlocks with strides
1, 2, 2, 2, 1x1-conv + BatchNorm projection shortcuts where the shape changes, no conv biases, average
pooling and a linear head. Module names match theirs (``conv1``, ``bn1``, ``layer1``..``layer4``,
``shortcut``, ``linear``), so state-dict keys agree and name patterns such as ``layer4|linear`` (for
``partial_reset``) read the same as in the paper's code.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from activews.errors import ActivewsError
from activews.models.base import ModelParams, register_model
from activews.units import Consumer, UnitGroup

__all__ = ["BasicBlock", "ResNet18", "ResNetParams", "WideResNetParams", "MIN_SIDE", "resnet_units"]

MIN_SIDE = 8
"""Smallest spatial side accepted: the three stride-2 stages shrink each side 8x, so below 8 the last
stages would only ever see 1x1 maps (and their 3x3 kernels mostly padding)."""

_LAYERS: dict[int, tuple[type[nn.Module], type[nn.Module]]] = {
    1: (nn.Conv1d, nn.BatchNorm1d),
    2: (nn.Conv2d, nn.BatchNorm2d),
}


class ResNetParams(ModelParams):
    """Parameters of ``resnet18``: the paper's narrow network by default."""

    width: int = Field(16, ge=1, description="channels of the first stage; the stages use 1x, 2x, 4x, 8x")


class WideResNetParams(ResNetParams):
    """Parameters of ``resnet18_wide``: the standard CIFAR width by default."""

    width: int = Field(64, ge=1, description="channels of the first stage; the stages use 1x, 2x, 4x, 8x")


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with a residual connection (post-activation, as in He et al.).

    Args:
        c_in: input channels.
        c_out: output channels.
        stride: stride of the first conv (and of the projection shortcut).
        dims: 1 for ``Conv1d``/``BatchNorm1d``, 2 for ``Conv2d``/``BatchNorm2d``.

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv 1512.03385).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dims: int) -> None:
        super().__init__()
        conv, norm = _LAYERS[dims]
        # No conv biases: each conv feeds a BatchNorm whose shift makes a bias redundant.
        self.conv1 = conv(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = conv(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = norm(c_out)
        # The shortcut is registered after bn2, as in the authors' code, so that layer order (which
        # partial_reset's ``last=k`` counts) and state-dict keys agree with theirs.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv(c_in, c_out, kernel_size=1, stride=stride, bias=False), norm(c_out)
            )
        # ReLUs are modules (not F.relu) so activation hooks, e.g. dormant-unit counts, can see them.
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))  # ReLU after the addition, as in the authors' code


class ResNet18(nn.Module):
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]) for 1-D ``(C, L)`` or 2-D ``(C, H, W)`` inputs.

    Args:
        input_shape: shape of one example: ``(L,)``, ``(C, L)`` or ``(C, H, W)``, every side >= 8.
        num_classes: outputs of the linear head.
        width: channels of the first stage; the four stages use ``width * (1, 2, 4, 8)``. 16 is the
            authors' narrow network (701,466 parameters for 3x32x32 and 10 classes), 64 the standard
            CIFAR ResNet-18 (11,173,962).
        name: the registered model name, used in error messages.

    Raises:
        ActivewsError: the input shape is not supported.

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv 1512.03385);
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475).
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, width: int = 16, name: str = "resnet18"
    ) -> None:
        super().__init__()
        shape = _checked_shape(name, input_shape)
        # (L,) examples get a channel axis in forward(); everything else is already channel-first.
        self.add_channel = len(input_shape) == 1
        dims = len(shape) - 1
        conv, norm = _LAYERS[dims]
        self.conv1 = conv(shape[0], width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU()
        c_in = width
        for i, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True), start=1):
            blocks = [
                BasicBlock(c_in, width * mult, stride, dims),
                BasicBlock(width * mult, width * mult, 1, dims),
            ]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            c_in = width * mult
        if shape[1:] == (32, 32):
            # The authors' exact pool for 32x32 inputs: the last stage's map is 4x4, so a 4x4 average
            # pool is the global mean and gives the same output as the adaptive pool below.
            self.pool: nn.Module = nn.AvgPool2d(4)
        else:
            # Any other size: average the last stage's map to one value per channel, which keeps the
            # head at Linear(8 * width, classes) and the parameter count independent of the input size.
            self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c_in, num_classes)

    def hidden_units(self) -> list[UnitGroup]:
        """The units that unit-recycling strategies (``redo``, ``continual_backprop``) may re-initialize:
        ``conv1 -> bn1 -> relu1 -> conv2`` inside each block (see :func:`resnet_units`)."""
        return resnet_units(self)

    def forward(self, x: Tensor) -> Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.pool(out).flatten(1))


def resnet_units(model: nn.Module) -> list[UnitGroup]:
    """The within-block units of a residual network built from :class:`BasicBlock`:
    ``conv1 -> bn1 -> relu1 -> conv2`` in every block, as :class:`activews.units.UnitGroup` records.

    Every other ReLU's output feeds a residual sum (through the identity or projection shortcut as well
    as the next conv), so zeroing its outgoing weights would not disconnect it: those units are not
    recyclable, as in the ReDo authors' ResNet setting (first conv of each block only).
    """
    return [
        UnitGroup(f"{name}.relu1", block.conv1, block.relu1, (Consumer(block.conv2),), block.bn1)
        for name, block in model.named_modules()
        if isinstance(block, BasicBlock)
    ]


def _checked_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``input_shape`` as ``(C, L)`` or ``(C, H, W)``; a one-line :class:`ActivewsError` if unsupported."""
    shape = (1, *input_shape) if len(input_shape) == 1 else tuple(input_shape)
    if len(shape) not in (2, 3):
        raise ActivewsError(
            f"model {name!r} supports 1-D (L or C,L) and 2-D (C,H,W) inputs, got example shape "
            f"{tuple(input_shape)}; reshape the data to (C,H,W) or use --model paper_mlp or mlp"
        )
    if shape[0] < 1 or min(shape[1:]) < MIN_SIDE:
        raise ActivewsError(
            f"model {name!r} needs at least one channel and every side >= {MIN_SIDE} (its stride-2 stages "
            f"shrink each side 8x), got example shape {tuple(input_shape)}; pad or resize the data, or use "
            f"--model cnn or paper_mlp"
        )
    return shape


@register_model("resnet18", ResNetParams)
def resnet18(input_shape: tuple[int, ...], num_classes: int, params: ResNetParams) -> nn.Module:
    """ResNet-18 as in Ash & Adams' code: narrow (16/32/64/128 channels), 701,466 parameters on CIFAR-10.

    Inputs: ``(C, H, W)`` images (a 4x4 average pool for 32x32, as the authors', else global average
    pooling) or 1-D ``(L,)`` / ``(C, L)`` signals such as MNIST-1D (``Conv1d``/``BatchNorm1d``); every
    side >= 8. ``width`` sets the first stage's channels.

    References:
        He et al., CVPR 2016 (arXiv 1512.03385); Ash & Adams, NeurIPS 2020 (arXiv 1910.08475).
    """
    return ResNet18(input_shape, num_classes, params.width, name="resnet18")


@register_model("resnet18_wide", WideResNetParams)
def resnet18_wide(input_shape: tuple[int, ...], num_classes: int, params: WideResNetParams) -> nn.Module:
    """Standard-width CIFAR ResNet-18 (64/128/256/512 channels), 11,173,962 parameters on CIFAR-10.

    The same network as ``resnet18`` at the width most reproductions of the paper used; inputs as for
    ``resnet18``.

    References:
        He et al., CVPR 2016 (arXiv 1512.03385).
    """
    return ResNet18(input_shape, num_classes, params.width, name="resnet18_wide")
