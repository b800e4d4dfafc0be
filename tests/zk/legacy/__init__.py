"""The retired non-zero-knowledge protocol (tests and benchmark baselines only)."""
