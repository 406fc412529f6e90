"""The IR, passes, lowering, pipeline, quantisation and the onnx backend import and run
with torch blocked (DESIGN.md §3)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
sys.modules['torch'] = None  # any 'import torch' now fails
import numpy as np
from pseudosnn.compiler import ir, onnx_io, pipeline, lower, quantize, summary, command
from pseudosnn.compiler.passes import avgpool_fusion, bn_fold, residual, schedule
from pseudosnn.backends import onnx_backend, registry
g = ir.Graph((3,), (ir.gemm('a', 'input', np.eye(3)), ir.neuron('n', 'a', 4),
                    ir.gemm('o', 'n', np.ones((2, 3)))), 'o')
r = pipeline.run(g, verify=True, fixed_point=True)
onnx_io.from_onnx(onnx_io.to_onnx(g))
print('ok', len(r.graph.populations))
"""


def test_compiler_core_is_torch_free():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 1"
