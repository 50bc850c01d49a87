"""Tests for cyan_rcbm.data.cascade_dynamics (equations.md B8)."""

import numpy as np
import pytest

from cyan_rcbm.data import cascade_dynamics as cd
from cyan_rcbm.data import graph_features
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.errors import ConfigError, DataError


def _cascade(cid, pairs):
  users, times = zip(*pairs)
  return Cascade(id=cid, users=np.array(users, np.int32),
                 times=np.array(times, np.float64))


# Follower graph (src -> dst: dst follows src): 0->1, 1->2, 0->3, 4->5, 2->4.
_EDGES = np.array([[0, 1], [1, 2], [0, 3], [4, 5], [2, 4]], np.int32)


def _dataset(edges=_EDGES):
  a = _cascade('a', [(0, 0.0), (1, 1.0), (3, 1.5), (2, 2.0), (5, 2.5),
                     (4, 3.2), (1, 3.6), (2, 9.0)])
  # Ties: 0 and 1 at the same time, so 1's followee 0 is not *earlier*.
  b = _cascade('b', [(1, 10.0), (0, 10.0), (3, 11.0)])
  return CascadeDataset(cascades=[a, b], vocab=[str(i) for i in range(6)],
                        edges=edges, time_unit='units', source='hand')


def test_hand_made_cascades():
  dyn = cd.cascade_dynamics(_dataset(), num_bins=4, horizon=4.0)
  assert list(dyn.feature_names) == list(cd.CASCADE_FEATURES)
  assert list(dyn.ids) == ['a', 'b']
  assert dyn.x.shape == (2, 5, 4) and dyn.x.dtype == np.float32
  a, b = dyn.x
  np.testing.assert_array_equal(a[0], [1, 0, 1, 0])  # initiators: 0, then 5
  np.testing.assert_array_equal(a[1], [0, 2, 1, 1])  # first-time: 1,3 | 2 | 4
  np.testing.assert_array_equal(a[2], [0, 0, 0, 1])  # user 1 again
  np.testing.assert_array_equal(a[3], [0, 2, 3, 5])  # path 3-0-1-2-4-5
  np.testing.assert_array_equal(a[4], [1, 3, 4, 6])
  np.testing.assert_array_equal(b[0], [2, 0, 0, 0])
  np.testing.assert_array_equal(b[1], [0, 1, 0, 0])
  np.testing.assert_array_equal(b[3], [1, 2, 2, 2])
  np.testing.assert_array_equal(b[4], [2, 3, 3, 3])
  assert '1 of 11 events after the window' in dyn.source
  samples = cd.cascade_samples(_dataset(), num_bins=4, horizon=4.0)
  np.testing.assert_array_equal(samples.dynamics.x, dyn.x)
  assert samples.window_events.tolist() == [7, 3]
  assert samples.later_events.tolist() == [1, 0]


def test_duration_window_and_default_horizon():
  dyn = cd.cascade_dynamics(_dataset(), num_bins=3, window='duration')
  # Cascade a spans 9 units: bins of 3; its last event lands in the last bin.
  np.testing.assert_array_equal(dyn.x[0, :3].sum(axis=0), [5, 2, 1])
  np.testing.assert_array_equal(dyn.x[1, :3].sum(axis=0), [2, 0, 1])
  default = cd.cascade_dynamics(_dataset(), num_bins=2)  # median duration 5
  assert 'horizon=5 units' in default.source


def test_follower_direction_matters():
  # Reversed edges: only 4 follows an earlier adopter (5).
  dyn = cd.cascade_dynamics(_dataset(_EDGES[:, ::-1]), num_bins=4, horizon=4.0)
  np.testing.assert_array_equal(dyn.x[0, 0], [1, 2, 2, 0])
  np.testing.assert_array_equal(dyn.x[0, 1], [0, 0, 0, 1])
  # Graph features use undirected ties, so they do not change.
  np.testing.assert_array_equal(dyn.x[0, 4], [1, 3, 4, 6])


def test_history_and_late_events_in_event_features():
  graph = graph_features.social_graph(np.array([[0, 1], [1, 2]]), 3, symmetric=True)
  # One sample: user 0 in the history (bin -1), then 1 and 0 again, then a
  # late event of 2 that must be ignored.
  x = cd.event_features(np.array([0, 4]), np.array([0, 1, 0, 2]),
                        np.array([0., 5., 6., 99.]), np.array([-1, 0, 1, 7]),
                        np.array([0, 1, 0, 0]), graph, num_bins=2, num_kinds=2)
  names = cd.feature_names(['propagators', 'commentators'])
  got = dict(zip(names, x[0].tolist()))
  assert got['initiators'] == [0, 0]
  assert got['first_time_commentators'] == [1, 0]
  assert got['recurring_propagators'] == [0, 1]
  assert got['lcc_size'] == [2, 2] and got['diameter'] == [1, 1]


def test_errors():
  no_graph = CascadeDataset(cascades=_dataset().cascades, vocab=['0'] * 6)
  with pytest.raises(DataError, match='need a follower graph'):
    cd.cascade_dynamics(no_graph)
  with pytest.raises(ConfigError, match='window'):
    cd.cascade_dynamics(_dataset(), window='peak')
  with pytest.raises(ConfigError, match='num_bins'):
    cd.cascade_dynamics(_dataset(), num_bins=0)


def test_read_pooled_set_prefixes_ids_and_attaches_the_graph():
  ds = cd.read_pooled_set('topolstm_twitter')
  assert len(ds) == 456 + 113 and ds.source == 'topolstm_twitter'
  assert ds.cascades[0].id == 'train:1' and ds.cascades[-1].id == 'test:113'
  assert len(ds.edges) == 12045 and ds.edges.max() < ds.num_users
  with pytest.raises(ConfigError, match='follower graph'):
    cd.read_pooled_set('twitter')
