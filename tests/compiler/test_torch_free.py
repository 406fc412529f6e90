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


NIR_CODE = """
import sys, tempfile, pathlib
sys.modules['torch'] = None
import numpy as np
from pseudosnn.backends import export_command, nir_backend
from pseudosnn.compiler.frontend.nir import load_nir
from pseudosnn.compiler.testing import random_graph
from pseudosnn.simulator.engine import simulate
g = random_graph('residual', seed=1, stream=True)
path = pathlib.Path(tempfile.mkdtemp()) / 'g.nir'
path.write_bytes(nir_backend.to_bytes(nir_backend.export(g)))
x = np.ones((1, *g.input.shape))
print('ok', np.array_equal(simulate(g, x).output, simulate(load_nir(path), x).output))
"""


def test_nir_import_and_export_are_torch_free():
    """NIR files are read, written and simulated without torch (only ``nir`` and h5py)."""
    proc = subprocess.run([sys.executable, "-c", NIR_CODE], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok True"
