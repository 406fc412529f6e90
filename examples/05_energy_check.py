"""Step 5: compare the training-time energy estimates with the deployed spike counts,
layer by layer, and write a table, JSON and a chart.

CLI equivalent:
``pseudosnn energy-check runs/digits-cnn/last.pth --data digits --report reports/energy``
"""

from pathlib import Path

from pseudosnn.energy_check_command import run_energy_check

result = run_energy_check(Path("runs/digits-cnn/last.pth"), "digits", fixed_point=True,
                          report_dir=Path("reports/energy"))
t = result["check"]["totals"]
print(f"spike-aware estimate off by {100 * t['spike_rel_err']:+.1f}%, the paper's by "
      f"{100 * t['paper_rel_err']:+.1f}%")
