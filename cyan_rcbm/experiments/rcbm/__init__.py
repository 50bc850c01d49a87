"""The RCBM reproduction, one module per job.

The entry is `cyan_rcbm.experiments.reproduce_rcbm`.
"""
