"""Tests for cyan_rcbm.data.stats."""

import numpy as np

from cyan_rcbm.data import stats
from cyan_rcbm.data.types import Cascade, CascadeDataset


def _dataset():
  def cascade(cid, users, times):
    return Cascade(id=cid, users=np.array(users, np.int32),
                   times=np.array(times, np.float64))
  return CascadeDataset(
      cascades=[cascade('a', [0, 1, 2], [0.0, 1.0, 4.0]),
                cascade('b', [1, 3], [2.0, 3.0]),
                cascade('c', [0, 1], [5.0, 7.0])],
      vocab=['0', '1', '2', '3', 'graph_only'],
      edges=np.array([[0, 1]], np.int32), time_unit='units')


def test_dataset_stats_by_hand():
  got = stats.dataset_stats(_dataset())
  assert got == {
      'cascades': 3, 'events': 7, 'users': 5, 'active_users': 4,
      'min_length': 2, 'max_length': 3, 'mean_length': round(7 / 3, 4),
      'time_unit': 'units', 'first_time': 0.0, 'last_time': 7.0,
      'timestamps': False, 'parents': False, 'edges': 1}


def test_distribution_stats_by_hand():
  got = stats.distribution_stats(_dataset())
  durations = [4.0, 1.0, 2.0]
  assert got == {
      'cascades': 3, 'events': 7, 'length_mean': 7 / 3, 'length_min': 2,
      'length_max': 3, 'length_2_frac': 2 / 3, 'users_seen': 4, 'roots': 2,
      'first_pairs': 2,  # (0, 1) twice, (1, 3)
      'last_time_mean': np.mean(durations),
      'last_time_median': 2.0,
      'last_time_p90': float(np.quantile(durations, 0.9)),
      'last_time_max': 4.0, 'length_hist': [0, 0, 2, 1]}


def test_empty_dataset():
  empty = CascadeDataset(cascades=[], vocab=[])
  assert stats.distribution_stats(empty) == {'cascades': 0}
  got = stats.dataset_stats(empty)
  assert got['cascades'] == 0 and got['first_time'] is None
