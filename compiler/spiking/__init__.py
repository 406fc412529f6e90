"""The spiking-graph contract (DESIGN.md §2): one home for what a deployed network means
and what it costs, shared by the compiler, the simulator and every backend (torch-free).

* ``graph``     the nodes, projections and invariants (frozen, read-only arrays);
* ``semantics`` the neuron: one step function and its closed forms;
* ``synapses``  what a projection computes (and the encoder current);
* ``schedule``  when each population's window opens; latency;
* ``counting``  fan-out, SOPs, encoder MACs, neuron updates, the trained network's ANN
  MACs and the paper's FLOPs;
* ``reference`` the closed-form (rate-level) evaluator of a graph;
* ``result``    ``RunResult``, what every executor returns;
* ``backend``   the backend protocol and the features a graph needs.
"""
