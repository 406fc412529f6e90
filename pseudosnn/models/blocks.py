"""Residual blocks with fixed attribute names (the compiler reads them; see
``pseudosnn.models`` for the walkable structure). All tensors are ``[T, B, C, H, W]``."""

from __future__ import annotations

from torch import nn

from pseudosnn.models.layers import ResidualAdd, SeqToANN
from pseudosnn.neurons.base import SpikingNeuron


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None
            ) -> SeqToANN:
    """``SeqToANN(Conv2d(bias=False), BatchNorm2d)``; ``padding`` defaults to ``kernel//2``."""
    pad = kernel // 2 if padding is None else padding
    return SeqToANN(nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False),
                    nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Spiking ResNet block (ResNet-18/19, the residual add *before* the second neuron)::

        out = sn2(add(conv2(sn1(conv1(x))), shortcut(x) if shortcut else x))

    ``conv1``/``conv2``/``shortcut`` are ``SeqToANN(Conv2d, BatchNorm2d)``; ``shortcut``
    (a strided 1x1 conv) is ``None`` for an identity shortcut.
    """

    def __init__(self, conv1: SeqToANN, sn1: SpikingNeuron, conv2: SeqToANN,
                 shortcut: SeqToANN | None, sn2: SpikingNeuron, add: ResidualAdd) -> None:
        super().__init__()
        self.conv1, self.sn1, self.conv2 = conv1, sn1, conv2
        self.shortcut, self.add, self.sn2 = shortcut, add, sn2

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.sn2(self.add(self.conv2(self.sn1(self.conv1(x))), identity))


class SEWBlock(nn.Module):
    """Spike-element-wise block with the ADD connection (SEW-ResNet)::

        out = add(sn2(conv2(sn1(conv1(x)))), shortcut_sn(shortcut(x)) if shortcut else x)

    The output is a sum of two spike rates, not a population: the next layer's synapses
    read both terms. ``shortcut`` + ``shortcut_sn`` (a strided 1x1 conv-BN and its neuron)
    are both ``None`` for an identity shortcut.
    """

    def __init__(self, conv1: SeqToANN, sn1: SpikingNeuron, conv2: SeqToANN,
                 sn2: SpikingNeuron, shortcut: SeqToANN | None,
                 shortcut_sn: SpikingNeuron | None, add: ResidualAdd) -> None:
        super().__init__()
        self.conv1, self.sn1, self.conv2, self.sn2 = conv1, sn1, conv2, sn2
        self.shortcut, self.shortcut_sn, self.add = shortcut, shortcut_sn, add

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut_sn(self.shortcut(x))
        return self.add(self.sn2(self.conv2(self.sn1(self.conv1(x)))), identity)


class PreActBlock(nn.Module):
    """Pre-activation block (PreAct-ResNet): the block input and output are analog sums::

        out = add(conv2(sn2(conv1(sn1(x)))), shortcut(x) if shortcut else x)
    """

    def __init__(self, sn1: SpikingNeuron, conv1: SeqToANN, sn2: SpikingNeuron,
                 conv2: SeqToANN, shortcut: SeqToANN | None, add: ResidualAdd) -> None:
        super().__init__()
        self.sn1, self.conv1, self.sn2, self.conv2 = sn1, conv1, sn2, conv2
        self.shortcut, self.add = shortcut, add

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.add(self.conv2(self.sn2(self.conv1(self.sn1(x)))), identity)


RESIDUAL_BLOCKS = (BasicBlock, SEWBlock, PreActBlock)
