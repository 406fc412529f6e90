"""Model zoo: :func:`build_model` (``arch``, ``num_classes``, ``input_shape``, ``neuron``).

Walkable structure (what the compiler reads)
--------------------------------------------
Every model is a :class:`SpikingNetwork` with exactly two children:

* ``body``: a flat ``nn.Sequential`` run in order on time-major tensors
  ``[T, B, *features]``. Its items are of four kinds only:

  1. :class:`SeqToANN` (an ``nn.Sequential``): a run of linear/affine stateless modules,
     applied in order, from ``nn.Conv2d`` (``bias=False``), ``nn.BatchNorm2d``,
     ``nn.BatchNorm1d``, ``nn.AvgPool2d`` (no padding anywhere), ``nn.MaxPool2d`` (of
     currents: only in an analog stem before any neuron, PreAct-ResNet-34's 3x3/2),
     ``nn.AdaptiveAvgPool2d``, ``nn.Linear``, ``nn.Flatten`` (flattens ``C,H,W`` in C
     order). Consecutive ``SeqToANN`` items compose.
  2. a neuron (:class:`~pseudosnn.neurons.base.SpikingNeuron`, any family; its
     ``deploy_spec()`` says how it deploys). Its input is the output of the item before.
  3. a residual block, one of (attribute names are fixed; ``shortcut`` is ``None`` for an
     identity shortcut):

     - :class:`BasicBlock` (ResNet-18/19, ``rescnn_digits``): attributes ``conv1``,
       ``sn1``, ``conv2``, ``shortcut``, ``add``, ``sn2``;
       ``out = sn2(add(conv2(sn1(conv1(x))), shortcut(x) or x))``: the add joins two
       *currents* into ``sn2`` (two projections into one population).
     - :class:`SEWBlock` (SEW-ResNet, ADD connection): ``conv1``, ``sn1``, ``conv2``,
       ``sn2``, ``shortcut``, ``shortcut_sn``, ``add``;
       ``out = add(sn2(conv2(sn1(conv1(x)))), shortcut_sn(shortcut(x)) or x)``: the output
       is a *sum of rates* of several populations (identity chains accumulate), read by
       the next layer's synapses as one projection per term.
     - :class:`PreActBlock` (PreAct-ResNet-34): ``sn1``, ``conv1``, ``sn2``, ``conv2``,
       ``shortcut``, ``add``; ``out = add(conv2(sn2(conv1(sn1(x)))), shortcut(x) or x)``:
       block inputs/outputs are analog sums (currents), ``shortcut`` acts on the current.

     ``add`` is a :class:`ResidualAdd` (``mode="mean"``: add equal-length paths, else
     add the time means; ``mode="mirror"``: the paper's reflection padding).

  4. a :class:`SpikePool` (attributes ``sn``, ``pool``): a neuron and max pooling of its
     spikes step by step (an OR over each window; the SEW-ResNet stems' 3x3/2, or 2x2
     pools with ``pooling="max"``).

* ``readout``: :class:`Readout`, ``mean_t(fc(x))`` with ``fc`` an ``nn.Linear``
  (non-spiking; its input is ``[T, B, F]`` after the body's final ``Flatten``).

The first item of ``body`` acts on the analog input (direct encoding). ``forward(x)``
takes ``[B, *input_shape]`` and unsqueezes it to ``[1, B, ...]``; event-frame inputs
``(T, C, H, W)`` (``vggsnn_dvs``) are transposed to ``[T, B, C, H, W]``. Neuron names
are module names, e.g. ``body.1``, ``body.4.sn1``: ``model.neurons()`` yields them in
forward order. Models carry ``arch``, ``num_classes``, ``input_shape``,
``neuron_config`` and ``residual_mode`` so a checkpoint can rebuild them.

Architectures: ``mlp_digits``, ``cnn_digits``, ``rescnn_digits`` (8x8 digits, seconds on
a CPU), ``vgg11``, ``vgg13``, ``vggsnn_cifar``, ``vggsnn_dvs``, ``resnet18``,
``resnet19``, ``sew_resnet18``, ``sew_resnet19``, ``sew_resnet20``, ``sew_resnet34``,
``preact_resnet34``. ``pooling`` (``build_model``): ``"default"`` is the paper's
(max-pool stems in ``sew_resnet18/34`` and ``preact_resnet34``, average pooling
elsewhere); ``"avg"`` puts 2x2 average pooling in those stems; ``"max"`` pools spikes
in ``cnn_digits`` and the VGGs too.
"""

from __future__ import annotations

from pseudosnn.models.blocks import RESIDUAL_BLOCKS, BasicBlock, PreActBlock, SEWBlock, conv_bn
from pseudosnn.models.layers import Readout, ResidualAdd, SeqToANN, SpikePool
from pseudosnn.models.zoo import (
    ARCHITECTURES,
    POOLINGS,
    SpikingNetwork,
    UnknownArchitecture,
    build_from_record,
    build_model,
    check_arch,
)

__all__ = [
    "ARCHITECTURES", "POOLINGS", "RESIDUAL_BLOCKS", "BasicBlock", "PreActBlock", "Readout",
    "ResidualAdd", "SEWBlock", "SeqToANN", "SpikePool", "SpikingNetwork",
    "UnknownArchitecture", "build_from_record", "build_model", "check_arch", "conv_bn",
]
