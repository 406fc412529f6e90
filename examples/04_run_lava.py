"""Step 4: run the same artifact in Intel's Lava (in the Python 3.10 Lava venv, through a
subprocess) and check it against the simulator spike count for spike count.

CLI equivalent: ``pseudosnn run build/cnn --target lava --samples 20 --check``
"""

import numpy as np
from pseudosnn.backends.lava_backend import run_artifact
from pseudosnn.compiler.artifact import load
from pseudosnn.simulator.datasets import open_dataset
from pseudosnn.simulator.engine import simulate

graph = load("build/cnn")
data = open_dataset("digits", graph.input.sample_shape).head(20)
x, y = data.x[:20], data.y
lava = run_artifact("build/cnn", x, timeout=600)
sim = simulate(graph, x)
same = all(np.array_equal(lava.counts[p.name], sim.counts[p.name]) for p in graph.populations)
print(f"Lava accuracy {np.mean(lava.output.argmax(1) == y):.3f}; spike counts equal to the "
      f"simulator: {same}; SOPs equal: {lava.sops == sim.sops}")
