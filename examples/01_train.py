"""Step 1: train a PseudoSNN CNN on the bundled 8x8 digits (about half a minute on a CPU).

CLI equivalent: ``pseudosnn train --config configs/digits/cnn.yaml --out runs/digits-cnn``
"""

from pseudosnn.config import load_config
from pseudosnn.trainer import train

config = load_config("configs/digits/cnn.yaml", overrides={"epochs": 15})
summary = train(config, "runs/digits-cnn")
print(f"test accuracy {summary['final_test_acc']:.4f}, mean T "
      f"{summary['initial_mean_T']:.2f} -> {summary['final_mean_T']:.2f}")
