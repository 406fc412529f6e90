"""The Lava backend, main-environment side: emits the artifact's Lava entry point and
runs artifacts in the Lava venv through a subprocess (torch-free, lava-free here).

The Lava venv's Python (lava-nc 0.10.0 needs Python 3.10) is found by this rule:

1. ``$PSEUDOSNN_LAVA_PYTHON``, if set (it must be an executable file);
2. ``.venv-lava/bin/python`` in the current directory or the nearest parent that has one
   (``make lava-venv`` creates it in a checkout);
3. ``.venv-lava/bin/python`` beside the source tree this package was loaded from (an
   editable install).

Every run has a timeout; on failure the child's traceback is shown in the error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from pseudosnn.backends.lava.entry import EXIT_TIMEOUT
from pseudosnn.compiler.artifact import save
from pseudosnn.compiler.spiking.backend import check_supported
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.compiler.spiking.result import RunResult, run_result

import pseudosnn
from pseudosnn.errors import PseudoSNNError

LAVA_PYTHON_ENV = "PSEUDOSNN_LAVA_PYTHON"
LAVA_VENV_PYTHON = Path(".venv-lava") / "bin" / "python"
ENTRY_MODULE = "pseudosnn.backends.lava.entry"
ENTRY_SCRIPT = "run_lava.py"
README = "README_lava.md"
DEFAULT_TIMEOUT_S = 600.0
STARTUP_GRACE_S = 30.0
"""Extra seconds the parent waits beyond the child's own watchdog before killing it."""
STDERR_TAIL_CHARS = 6000

RUN_LAVA_PY = '''\
"""Run this compiled artifact on Lava (Intel lava-nc 0.10.0, Python 3.10).

    <lava venv>/bin/python run_lava.py --inputs X.npz --out RESULT.npz [--samples N]
        [--fixed-point] [--record-spikes] [--timeout S]

X.npz holds array ``x`` (B, {input_shape}); see ``--help``. Needs the pseudosnn package in
the Lava venv (``make lava-venv`` in the toolchain's repository).
"""

import sys
from pathlib import Path

try:
    import lava.magma  # noqa: F401  (lava-nc 0.10.0)
    from pseudosnn.backends.lava.entry import main
except ImportError as exc:
    sys.exit(f"{{sys.executable}} cannot run this artifact on Lava: {{exc}}. Run it with the "
             "Python of a venv that has lava-nc 0.10.0 and pseudosnn (Python 3.10; "
             "`make lava-venv` in the toolchain's checkout creates .venv-lava)")

sys.exit(main([str(Path(__file__).resolve().parent), *sys.argv[1:]]))
'''

README_TEXT = """\
# Running this artifact on Lava

Graph: {populations} populations, {projections} projections, {mode}; latency {latency} steps.

    .venv-lava/bin/python {script} --inputs X.npz --out RESULT.npz [--samples N] [--fixed-point]
    pseudosnn run {{ARTIFACT}} --target lava --data digits --samples 20     # from the main env
"""


class LavaUnavailableError(PseudoSNNError, RuntimeError):
    """The Lava venv is missing or cannot import lava."""


class LavaRunError(PseudoSNNError, RuntimeError):
    """The Lava run failed or timed out; the message holds the child's stderr tail."""


def lava_python() -> Path:
    """The Lava venv's interpreter, by the rule in the module docstring."""
    configured = os.environ.get(LAVA_PYTHON_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file() or not os.access(path, os.X_OK):
            what = "a directory" if path.is_dir() else "not an executable file" \
                if path.exists() else "missing"
            raise LavaUnavailableError(
                f"{LAVA_PYTHON_ENV}={configured} is {what}; point it at the Python of a venv "
                "with lava-nc 0.10.0 and pseudosnn (`make lava-venv` creates .venv-lava)")
        return path
    here = Path.cwd().resolve()
    source_tree = Path(pseudosnn.__file__).resolve().parents[1]
    for folder in (here, *here.parents, source_tree):
        if (folder / LAVA_VENV_PYTHON).is_file():
            return folder / LAVA_VENV_PYTHON
    raise LavaUnavailableError(
        f"no Lava venv found: {LAVA_PYTHON_ENV} is not set and there is no "
        f"{LAVA_VENV_PYTHON} in {here} or its parents. Create one with `make lava-venv` "
        "in the toolchain's checkout, or set {LAVA_PYTHON_ENV} to a Python 3.10 that has "
        "lava-nc 0.10.0 and pseudosnn installed".replace("{LAVA_PYTHON_ENV}", LAVA_PYTHON_ENV))


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-STDERR_TAIL_CHARS:]


def run_entry(args: list[str], timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Run the entry point in the Lava venv with ``args``; return its stdout.

    The child gets ``--timeout`` (its own watchdog kills hung Lava processes); the parent
    kills the child's whole process group if it outlives that by ``STARTUP_GRACE_S``."""
    python = lava_python()
    cmd = [str(python), "-m", ENTRY_MODULE, *args, "--timeout", str(timeout)]
    with tempfile.TemporaryDirectory(prefix="pseudosnn-lava-") as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                rc = proc.wait(timeout=timeout + STARTUP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise LavaRunError(
                    f"the Lava run did not finish within {timeout + STARTUP_GRACE_S:g} s and "
                    "was killed (slow or hung: raise --timeout if it was still making "
                    f"progress); command: {' '.join(cmd)}\n--- child stderr ---\n"
                    f"{_tail(err_path)}") from None
        stderr = _tail(err_path)
        if rc != 0:
            reason = (f"was stopped after --timeout {timeout:g} s (slow or hung: raise "
                      "--timeout if it was still making progress)" if rc == EXIT_TIMEOUT
                      else f"failed with exit code {rc}")
            hint = ""
            if "ModuleNotFoundError" in stderr:
                hint = (f"\n{python} lacks a package the Lava backend needs (lava-nc 0.10.0, "
                        "numpy, pseudosnn); (re)create the Lava venv with `make lava-venv`")
            raise LavaRunError(f"the Lava run {reason}; command: {' '.join(cmd)}\n"
                               f"--- child stderr ---\n{stderr}{hint}")
        return out_path.read_text()


def run_artifact(
    artifact: str | os.PathLike, x: np.ndarray, *, fixed_point: bool = False,
    record_spikes: bool = False, batch: int = 0, timeout: float = DEFAULT_TIMEOUT_S,
    inject_fault: str | None = None, conv_model: str = "lava",
    graph: SpikingGraph | None = None,
) -> RunResult:
    """Run ``x`` (B, *input shape) through the artifact on Lava; a :class:`RunResult`
    like the simulator's (``extra`` holds timings and ``readout_raw``). ``graph``: the
    artifact's graph when the caller has already loaded it."""
    options = ["--conv-model", conv_model]
    if batch:
        options += ["--batch", str(batch)]
    if inject_fault:
        options += ["--inject-fault", inject_fault]
    return run_artifacts([(artifact, x)], fixed_point=fixed_point,
                         record_spikes=record_spikes, timeout=timeout, options=options,
                         graphs=None if graph is None else [graph])[0]


def run_artifacts(
    jobs: list[tuple[str | os.PathLike, np.ndarray]], *, fixed_point: bool = False,
    record_spikes: bool = False, timeout: float = DEFAULT_TIMEOUT_S,
    options: list[str] | None = None, graphs: list[SpikingGraph] | None = None,
) -> list[RunResult]:
    """Run several ``(artifact, x)`` pairs in one Lava-venv process (one start-up)."""
    if graphs is None:
        from pseudosnn.compiler.artifact import load

        graphs = [load(artifact) for artifact, _ in jobs]
    with tempfile.TemporaryDirectory(prefix="pseudosnn-lava-io-") as tmp:
        spec = []
        for i, (artifact, x) in enumerate(jobs):
            inputs, result = Path(tmp) / f"x{i}.npz", Path(tmp) / f"result{i}.npz"
            np.savez(inputs, x=np.asarray(x, dtype=np.float64))
            spec.append(dict(artifact=str(artifact), inputs=str(inputs), out=str(result),
                             fixed_point=fixed_point, record_spikes=record_spikes))
        jobs_file = Path(tmp) / "jobs.json"
        jobs_file.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        run_entry(["--jobs", str(jobs_file), *(options or [])], timeout=timeout)
        wall = time.perf_counter() - t0
        results = []
        for job, graph in zip(spec, graphs, strict=True):
            with np.load(job["out"], allow_pickle=False) as z:
                results.append(result_from_arrays(graph, {k: z[k] for k in z.files}, wall))
    return results


TIMINGS = ("seconds_build", "seconds_compile", "seconds_run", "seconds_read", "seconds_total",
           "seconds_process", "lava_runs", "mode")


def result_from_arrays(graph: SpikingGraph, arrays: dict[str, np.ndarray],
                       wall_seconds: float) -> RunResult:
    """The :class:`RunResult` of what the Lava run observed (counts, spikes, readouts);
    SOPs and MACs come from the counting module like every backend's."""
    counts = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("counts/")}
    spikes = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("spikes/")}
    extra = {k: arrays[k].item() for k in TIMINGS}
    extra["seconds_wall"] = wall_seconds
    extra["readout_raw"] = arrays["readout_raw"]
    if "lava_lif" in arrays:  # populations that ran on lava's own LIF process
        extra["lava_lif"] = [str(n) for n in arrays["lava_lif"]]
    return run_result(graph, arrays["output"], counts, spikes=spikes or None, extra=extra)


class LavaBackend:
    """Deploys a spiking graph on Intel's Lava (float or bit-accurate fixed point)."""

    name = "lava"
    capabilities = frozenset({"float", "fixed_point", "rate", "stream", "record_spikes",
                              "heterogeneous_T", "event_scale", "delays", "leak",
                              "hard_reset", "fire_above", "spike_pool", "analog_stem",
                              "event_frames"})

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S, conv_model: str = "lava",
                 artifact: str | os.PathLike | None = None):
        self.timeout = timeout
        self.conv_model = conv_model  # "lava" (lava's own Conv model) or "im2col"
        self.artifact = artifact  # run this compiled artifact instead of saving the graph

    @classmethod
    def from_artifact(cls, art_dir: str | os.PathLike, **options) -> LavaBackend:
        return cls(artifact=art_dir, **options)

    def emit(self, graph: SpikingGraph, out_dir: Path | None = None) -> dict[str, bytes]:
        """``run_lava.py`` (the artifact's own Lava entry point) and a README."""
        shape = ", ".join(map(str, graph.input.sample_shape))
        readme = README_TEXT.format(
            populations=len(graph.populations), projections=len(graph.projections),
            mode="fixed point" if graph.fixed_point else "float",
            latency=graph.latency_steps, script=ENTRY_SCRIPT)
        return {ENTRY_SCRIPT: RUN_LAVA_PY.format(input_shape=shape).encode(),
                README: readme.encode()}

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        check_supported(self, graph, record_spikes)
        if self.artifact is not None:
            return run_artifact(self.artifact, x, fixed_point=graph.fixed_point,
                                record_spikes=record_spikes, timeout=self.timeout,
                                conv_model=self.conv_model, graph=graph)
        return self.run_many([(graph, x)], record_spikes=record_spikes)[0]

    def run_many(self, pairs: list[tuple[SpikingGraph, np.ndarray]],
                 record_spikes: bool = False) -> list[RunResult]:
        """Run several graphs (all float or all fixed point) in one Lava-venv process."""
        modes = {g.fixed_point for g, _ in pairs}
        if len(modes) != 1:
            raise ValueError("run_many needs graphs of one mode (all float or all fixed)")
        with tempfile.TemporaryDirectory(prefix="pseudosnn-lava-art-") as tmp:
            jobs = []
            for i, (graph, x) in enumerate(pairs):
                art = save(graph, Path(tmp) / f"artifact{i}", target="lava",
                           extra_files=self.emit(graph))
                jobs.append((art, x))
            return run_artifacts(jobs, fixed_point=modes.pop(), record_spikes=record_spikes,
                                 timeout=self.timeout, graphs=[g for g, _ in pairs],
                                 options=["--conv-model", self.conv_model])
