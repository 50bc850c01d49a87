"""Tests for cyan_rcbm.data.cascade_dynamics (SPEC B8)."""

import collections

import numpy as np
import pytest
from scipy import sparse

from cyan_rcbm.data import cascade_dynamics as cd
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
  graph = cd.social_graph(np.array([[0, 1], [1, 2]]), 3, symmetric=True)
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


def _bfs_lcc_diameter(adj_list):
  """Brute force: (LCC size, max diameter over the largest components)."""
  ecc, comp = {}, {}
  for s in adj_list:
    dist = {s: 0}
    queue = collections.deque([s])
    while queue:
      u = queue.popleft()
      for v in adj_list[u]:
        if v not in dist:
          dist[v] = dist[u] + 1
          queue.append(v)
    ecc[s], comp[s] = max(dist.values()), len(dist)
  if not comp:
    return 0, 0
  lcc = max(comp.values())
  return lcc, max(e for s, e in ecc.items() if comp[s] == lcc)


def _csr(n, i, j):
  m = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
  m = (m + m.T).tocsr()
  m.sort_indices()
  return m.indptr, m.indices, {u: list(m[u].indices) for u in range(n)}


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_diameter_solvers_against_brute_force(seed):
  rng = np.random.default_rng(seed)
  n = 60
  # A random tree (sweeps are exact on trees) and a random graph with extra
  # edges (a few components).
  parent = np.array([rng.integers(0, k) for k in range(1, n)])
  indptr, indices, lists = _csr(n, parent, np.arange(1, n))
  want = _bfs_lcc_diameter(lists)
  assert cd._bitset_lcc_diameter(indptr, indices, n) == want
  assert cd._sweep_lcc_diameter(indptr, indices, n) == want
  i, j = rng.integers(0, n, size=(2, 70))
  i, j = i[i != j], j[i != j]
  used = np.unique(np.concatenate([i, j]))
  remap = np.searchsorted(used, np.arange(n))
  indptr, indices, lists = _csr(len(used), remap[i], remap[j])
  want = _bfs_lcc_diameter(lists)
  assert cd._bitset_lcc_diameter(indptr, indices, len(used)) == want
  size, diameter = cd._sweep_lcc_diameter(indptr, indices, len(used))
  assert size == want[0] and diameter <= want[1]


def test_graph_rows_match_brute_force_per_bin():
  rng = np.random.default_rng(5)
  m, num_bins = 50, 8
  node_bins = np.sort(rng.integers(-2, num_bins, size=m))
  i, j = rng.integers(0, m, size=(2, 60))
  keep = i < j
  i, j = i[keep], j[keep]
  pairs = np.unique(np.stack([i, j], 1), axis=0)
  i, j = pairs[:, 0], pairs[:, 1]
  edge_bins = np.maximum(node_bins[i], node_bins[j])
  for limit in (1000, 0):
    diameter, lcc = cd._graph_rows(node_bins, i, j, edge_bins, num_bins, limit)
    for b in range(num_bins):
      present = np.flatnonzero(node_bins <= b)
      lists = {int(u): [] for u in present}
      for u, v, eb in zip(i, j, edge_bins):
        if eb <= b:
          lists[int(u)].append(int(v))
          lists[int(v)].append(int(u))
      want_lcc, want_diameter = _bfs_lcc_diameter(lists)
      assert lcc[b] == want_lcc
      if limit:
        assert diameter[b] == want_diameter, b
      else:
        assert diameter[b] <= want_diameter


def test_errors():
  no_graph = CascadeDataset(cascades=_dataset().cascades, vocab=['0'] * 6)
  with pytest.raises(DataError, match='need a follower graph'):
    cd.cascade_dynamics(no_graph)
  with pytest.raises(ConfigError, match='window'):
    cd.cascade_dynamics(_dataset(), window='peak')
  with pytest.raises(ConfigError, match='num_bins'):
    cd.cascade_dynamics(_dataset(), num_bins=0)
  with pytest.raises(DataError, match=r'graph edge ids must be in \[0, 2\)'):
    cd.social_graph(np.array([[0, 5]]), 2)
