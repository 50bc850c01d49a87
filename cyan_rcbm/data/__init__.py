"""Data: cascade types, readers/writers, splits, batching, synthetic generators
and RCBM dynamics samples."""

from cyan_rcbm.data.types import Cascade, CascadeDataset, Dynamics
from cyan_rcbm.data.readers import (FORMATS, ReadOptions, ReadReport,
                                    read_cascades, read_graph)
from cyan_rcbm.data.splits import Splits, chronological_split, random_split
from cyan_rcbm.data.writers import write_cascades, write_graph
