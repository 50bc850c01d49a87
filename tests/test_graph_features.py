"""Tests for cyan_rcbm.data.graph_features (equations.md B8 diameter and LCC)."""

import collections

import numpy as np
import pytest
from scipy import sparse

from cyan_rcbm.data import graph_features as gf
from cyan_rcbm.errors import DataError


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
  assert gf._bitset_lcc_diameter(indptr, indices, n) == want
  assert gf._sweep_lcc_diameter(indptr, indices, n) == want
  i, j = rng.integers(0, n, size=(2, 70))
  i, j = i[i != j], j[i != j]
  used = np.unique(np.concatenate([i, j]))
  remap = np.searchsorted(used, np.arange(n))
  indptr, indices, lists = _csr(len(used), remap[i], remap[j])
  want = _bfs_lcc_diameter(lists)
  assert gf._bitset_lcc_diameter(indptr, indices, len(used)) == want
  size, diameter = gf._sweep_lcc_diameter(indptr, indices, len(used))
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
    diameter, lcc = gf.graph_rows(node_bins, i, j, edge_bins, num_bins, limit)
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


def test_social_graph_drops_self_loops_and_duplicates():
  graph = gf.social_graph(np.array([[0, 1], [0, 1], [2, 2], [1, 2]]), 3)
  indptr, indices = graph.influencers
  assert [indices[indptr[u]:indptr[u + 1]].tolist() for u in range(3)] == [
      [], [0], [1]]
  indptr, indices = graph.links
  assert [indices[indptr[u]:indptr[u + 1]].tolist() for u in range(3)] == [
      [1], [0, 2], [1]]
  assert gf.social_graph(np.array([[0, 1]]), 2, symmetric=True).influencers[
      1].tolist() == [1, 0]


def test_social_graph_checks_ids():
  with pytest.raises(DataError, match=r'graph edge ids must be in \[0, 2\)'):
    gf.social_graph(np.array([[0, 5]]), 2)
