"""Data: cascade types, readers/writers, splits, batching, synthetic generators
and RCBM dynamics samples."""

from cyan_rcbm.data.types import Cascade, CascadeDataset, Dynamics
