"""The papers' experiments: plans, runs and reports behind scripts/reproduce_*."""
