"""Step 3: run the compiled network on the cycle-accurate simulator: spike counts, SOPs,
latency and energy per layer, with plots.

CLI equivalent: ``pseudosnn simulate build/cnn --data digits --report reports/cnn``
"""

from pathlib import Path

from pseudosnn.simulator.command import run_simulation

(report,) = run_simulation([Path("build/cnn")], data="digits", report_dir=Path("reports/cnn"))
print(f"accuracy {report['accuracy']:.4f}, latency {report['latency_steps']} steps, "
      f"{report['totals']['sops_per_sample']:.0f} SOPs and "
      f"{report['totals']['energy_pj_per_sample'] / 1e3:.1f} nJ per sample")
