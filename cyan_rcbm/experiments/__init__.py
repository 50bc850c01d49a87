"""The papers' experiments behind scripts/reproduce_*.py.

`reproduce_cyan` and `reproduce_rcbm` are the entries (plan, reproduce); the
`cyan` and `rcbm` packages hold their parts, one module per job.
"""
