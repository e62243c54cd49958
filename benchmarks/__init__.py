"""Speed and fidelity benchmarks against peers (UXsim, SUMO).  Run ``python -m benchmarks.run``."""
