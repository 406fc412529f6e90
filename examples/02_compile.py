"""Step 2: compile the checkpoint into an event-driven spiking graph artifact (float and
fixed point), checking every compiler pass against the stage before it.

CLI equivalent: ``pseudosnn-compile runs/digits-cnn/last.pth --target lava -o build/cnn --verify``
"""

from pathlib import Path

from pseudosnn.compiler.command import compile_path

for fixed in (False, True):
    out = Path("build/cnn-fixed" if fixed else "build/cnn")
    report = compile_path(Path("runs/digits-cnn/last.pth"), out, target="lava",
                          fixed_point=fixed, verify=True)
    print(report["summary"])
