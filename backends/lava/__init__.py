"""The Lava backend's Lava-side code (runs in the Lava venv: Python 3.10, lava-nc 0.10.0).

``process`` declares our Processes, ``models`` their float and bit-accurate fixed-point
ProcessModels, ``build`` turns a spiking graph into a connected Lava network, ``entry``
is the command-line entry point. Importing this package does not import lava; the
submodules do. Torch-free (DESIGN.md §3).
"""
