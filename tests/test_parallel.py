"""Tests for cyan_rcbm.cyan.parallel (the 4-device runs are in test_sharding)."""

import numpy as np

from cyan_rcbm.cyan import parallel
from cyan_rcbm.data import batching


def _batch(rows=3, length=4):
  mask = np.zeros((rows, length), bool)
  mask[:, :2] = True
  return batching.Batch(
      users=np.ones((rows, length), np.int32),
      gaps=np.full((rows, length), 0.5, np.float32),
      times=np.zeros((rows, length), np.float32), mask=mask,
      index=np.arange(rows, dtype=np.int32), calendar=None,
      parents=np.zeros((rows, length), np.int32))


def test_pad_batch_appends_empty_rows():
  padded = parallel.pad_batch(_batch(), 4)
  assert padded.users.shape == (4, 4) and padded.calendar is None
  np.testing.assert_array_equal(padded.index, [0, 1, 2, -1])
  assert not padded.mask[3].any() and padded.num_events == 6
  np.testing.assert_array_equal(padded.parents[3], -1)
  np.testing.assert_array_equal(padded.gaps[3], 0)
  assert padded.mask.dtype == bool and padded.users.dtype == np.int32


def test_device_batch_without_mesh_is_the_batch():
  batch = _batch()
  assert parallel.device_batch(batch, None) is batch
