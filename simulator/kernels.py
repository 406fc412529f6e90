"""Fast synaptic kernels: what ``compiler.linalg.project`` computes, in a chosen dtype.

Used where summation order cannot change a result: fixed point (integer sums are exact
in any order, and exact in float32/float64 while every partial sum stays below 2**24 /
2**53) and the opt-in float32 mode. Float64 mode calls ``linalg.project`` itself, so its
currents are bit-identical to ``compiler.reference``.

Conv on spike/count tensors: ``linalg.conv2d`` (im2col laid out ``(B, C*kh*kw, OH*OW)``,
one stacked GEMM ``W (C_out, K) @ cols`` whose result is already NCHW). Measured on this
machine (float32, batch 64, 1 thread, the four convs of the benchmark's CIFAR-sized
network): this layout 75 ms, a ``(B*OH*OW, K)`` im2col 121 ms, per-tap copies 80 ms;
issue-5 rerun (float32/float64, the benchmark's convs and the digits CNN's): per-tap
GEMMs on a channel-major padded flat layout 1.2-4.6x this layout's time, a row-major
``(B*OH*OW, K)`` GEMM 1.0-1.6x, one channel-major GEMM ``(C_out, K) @ (K, B*OH*OW)``
0.75-1.7x (faster only on 4x4 maps in float64, so not switched).
Block-constant strided kernels (avgpool + conv) are computed factorised as in
``linalg.project`` (sum-pool, then the small kernel). An event-list kernel (scatter the
weights of every spike with ``np.add.at``) lost to the GEMM at every activity measured
(128->128 3x3 conv on 64x128x8x8 spikes, issue-5 run: GEMM 19-31 ms; events 67 ms at
1 %, 361 ms at 5 %, 2.5 s at 20 % of neurons spiking; rerun with
``benchmarks/simulate.py --kernels``), so dense GEMM is kept for spikes and counts alike.
"""

from __future__ import annotations

import numpy as np
from pseudosnn.compiler.spiking.graph import Projection
from pseudosnn.compiler.spiking.synapses import block_kernel, conv2d, conv2d_block, project

FLOAT32_EXACT_LIMIT = 2**24
FLOAT64_EXACT_LIMIT = 2**53


class Projector:
    """Applies one projection, caching its weights in the working dtype.

    ``exact_int=True`` (fixed point): integer result ``(W_int @ x) << weight_exp``,
    computed in float32 or float64 GEMMs when ``x_max * max_row_sum(|W|)`` proves them
    exact, else in int64 via ``linalg.project``.
    """

    def __init__(self, pr: Projection, dtype, exact_int: bool):
        self.pr = pr
        self.exact_int = exact_int
        self.dtype = np.dtype(dtype)
        self._row_sum: float | None = None
        self._w: dict[np.dtype, np.ndarray] = {}
        self._block = (block_kernel(np.asarray(pr.weight), pr.stride)
                       if pr.kind == "conv" else None)
        es = pr.event_scale
        self.event_scale = None if es is None else np.asarray(es)

    @property
    def row_sum(self) -> float:
        """``max_o sum_i |W[o, i]|``: bounds every partial sum per unit of input."""
        if self._row_sum is None:
            w = np.asarray(self.pr.weight)
            self._row_sum = float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
        return self._row_sum

    def _weight(self, dtype) -> np.ndarray:
        """The weights (or the block kernel of a factorisable conv) in ``dtype``, cached."""
        if dtype not in self._w:
            w = self.pr.weight if self._block is None else self._block
            self._w[dtype] = np.ascontiguousarray(np.asarray(w, dtype=dtype))
        return self._w[dtype]

    def _apply(self, x: np.ndarray, dtype) -> np.ndarray:
        x = np.asarray(x, dtype=dtype)
        if self.event_scale is not None:
            x = x * self.event_scale.astype(dtype)
        w = self._weight(dtype)
        if self.pr.kind == "dense":
            return x.reshape(x.shape[0], -1) @ w.T
        if self._block is not None:
            return conv2d_block(x, w, self.pr.stride, self.pr.padding, self.pr.groups)
        return conv2d(x, w, self.pr.stride, self.pr.padding, self.pr.groups)

    def __call__(self, x: np.ndarray, x_max: int = 1) -> np.ndarray:
        if not self.exact_int:
            return self._apply(x, self.dtype)
        bound = self.row_sum * max(int(x_max), 1)
        if bound < FLOAT32_EXACT_LIMIT:
            y = self._apply(x, np.float32)
        elif bound < FLOAT64_EXACT_LIMIT:
            y = self._apply(x, np.float64)
        else:
            return project(self.pr, x, fixed_point=True)
        y = y.astype(np.int64)  # exact integers: the cast does not round
        return np.left_shift(y, self.pr.weight_exp) if self.pr.weight_exp else y
