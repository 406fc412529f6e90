"""Lava's own ``LIFReset`` process (lava-nc 0.10.0) against the contract's ``lif_step``, bit
for bit: the same input currents drive both, and ``u``, ``v`` and the spikes must be equal
at every step, in float and in Loihi's bit-accurate fixed point (12-bit decays, ``<< 6``,
the 24-bit wrap of ``u`` and clip of ``v``, per-sample resets). The parameters come from
``backends/lava/lif_map.py`` as the Lava backend uses them."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.lava

SCRIPT = r"""
import json
import numpy as np
from dataclasses import replace
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer
from lava.proc.lif.process import LIFReset
from lava.proc.monitor.process import Monitor
from pseudosnn.backends.lava.lif_map import lava_lif_parameters
from pseudosnn.compiler.spiking.graph import Population
from pseudosnn.compiler.spiking.semantics import Dynamics, initial_state, lif_step

N, STEPS, PERIOD = 64, 24, 8
rng = np.random.default_rng(0)
out = []
for fixed, dv, fire, theta in [(False, 0.25, ">=", 1.0), (False, 0.3, ">=", 0.7),
                               (False, 0.0, ">", 1.0), (True, 0.25, ">", 4096),
                               (True, 1229 / 4096, ">", 3000), (True, 0.0, ">", 4095)]:
    if fixed:  # integer currents, some large enough to wrap u and clip v
        cur = rng.integers(-3000, 6000, size=(N, STEPS))
        cur[:4] = rng.integers(2**16, 2**18, size=(4, STEPS))
        cur[4:8] = -rng.integers(2**16, 2**18, size=(4, STEPS))
    else:
        cur = rng.normal(0.4, 0.8, size=(N, STEPS))
    pop = Population(name="p", shape=(N,), timesteps=np.int64(PERIOD), threshold=theta,
                     bias=np.zeros(N), v0=0, coupling="stream", reset="hard", dv=dv, fire=fire)
    src = RingBuffer(data=cur.astype(np.int32 if fixed else float))
    lif = LIFReset(shape=(N,), u=0, v=0, bias_mant=0, bias_exp=0, reset_interval=PERIOD,
                   reset_offset=1, **lava_lif_parameters(pop, fixed))
    src.s_out.connect(lif.a_in)
    mon = Monitor(); mon.probe(lif.v, STEPS)
    mon_u = Monitor(); mon_u.probe(lif.u, STEPS)
    mon_s = Monitor(); mon_s.probe(lif.s_out, STEPS)
    lif.run(condition=RunSteps(num_steps=STEPS),
            run_cfg=Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt"))
    lv = mon.get_data()[lif.name]["v"]
    lu = mon_u.get_data()[lif.name]["u"]
    ls = mon_s.get_data()[lif.name]["s_out"]
    lif.stop()
    dyn = pop.dynamics
    mism = {"v": 0, "u": 0, "s": 0}
    spikes = 0
    for t in range(STEPS):
        if t % PERIOD == 0:
            v, _ = initial_state((N,), 0, dyn, fixed, np.int64 if fixed else np.float64)
        v, _, s = lif_step(v, None, cur[:, t], theta, dyn, True, fixed)
        u = np.left_shift(cur[:, t], 6) if fixed else cur[:, t]
        if fixed:  # Loihi's 24-bit wrap of u
            u = np.where(u > 2**23, u - 2**24, u); u = np.where(u <= -2**23, u + 2**24, u)
        mism["v"] += int(np.sum(lv[t] != v))
        mism["u"] += int(np.sum(lu[t] != u))
        mism["s"] += int(np.sum((ls[t] != 0) != s))
        spikes += int(s.sum())
    out.append({"fixed": fixed, "dv": dv, "mismatch": mism, "spikes": spikes,
                "clipped": bool(fixed and np.any(np.abs(lv) == 2**23 - 1)),
                "wrapped": bool(fixed and np.any(np.abs(cur) << 6 > 2**23))})
print(json.dumps(out))
"""


def test_lava_lif_process_is_the_contract_step(lava_python):
    proc = subprocess.run([lava_python, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(res) == 6
    for case in res:
        assert case["mismatch"] == {"v": 0, "u": 0, "s": 0}, case
        assert case["spikes"] > 0, case
    assert any(case["clipped"] for case in res)  # the 24-bit limits were reached
    assert any(case["wrapped"] for case in res)
