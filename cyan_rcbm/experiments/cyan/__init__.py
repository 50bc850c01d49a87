"""The CYAN-RNN reproduction, one module per job.

The entry is `cyan_rcbm.experiments.reproduce_cyan`.
"""
