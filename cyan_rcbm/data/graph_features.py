"""Social graphs and their connectivity features (equations.md B8: diameter,
LCC).

A `SocialGraph` holds who can influence whom and the undirected ties, as CSR
lists over dense user ids. `graph_rows` gives, for one sample, the size of
the largest connected component (LCC) and its diameter at the end of each
time bin, as users arrive (`cyan_rcbm.data.cascade_dynamics` defines the
features). LCC = the largest component's number of nodes (0 before the first
actor); diameter = the longest shortest path (in hops) within the LCC (0 for
a single node; the largest value if several components tie for largest).

The diameter is exact when at most `exact_limit` nodes (default
`DEFAULT_EXACT_DIAMETER_LIMIT` = 1000) have an edge: BFS from every node at
once on bit sets (`_bitset_lcc_diameter`, ~5 ms for 1000 nodes). Above that
it is the 4-sweep lower bound (BFS from the highest-degree node of the LCC,
then three times from the farthest node found, keeping the largest
eccentricity), exact on trees and usually exact on sparse social graphs.
Both are recomputed only at the end of a bin that adds edges.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from cyan_rcbm.errors import DataError

DEFAULT_EXACT_DIAMETER_LIMIT = 1000
_SWEEPS = 4


@dataclasses.dataclass(frozen=True)
class SocialGraph:
  """A social graph over dense user ids `[0, num_users)`, as two CSR lists.

  Attributes:
    num_users: number of users (ids index the CSR rows).
    influencers: (indptr [U+1], indices): the users who can influence each
      user (for a follower graph: the accounts it follows).
    links: (indptr [U+1], indices): undirected neighbours (the graph features
      use weak connectivity). No self loops, no duplicates.
  """
  num_users: int
  influencers: tuple[np.ndarray, np.ndarray]
  links: tuple[np.ndarray, np.ndarray]


def _csr(rows: np.ndarray, cols: np.ndarray, num_users: int
         ) -> tuple[np.ndarray, np.ndarray]:
  key = np.unique(rows.astype(np.int64) * num_users + cols)
  rows, cols = np.divmod(key, num_users)
  indptr = np.zeros(num_users + 1, np.int64)
  np.cumsum(np.bincount(rows, minlength=num_users), out=indptr[1:])
  return indptr, cols.astype(np.int64)


def social_graph(edges_Ex2: np.ndarray, num_users: int, *,
                 symmetric: bool = False) -> SocialGraph:
  """Builds a `SocialGraph` from directed edges `(src, dst)`.

  Args:
    edges_Ex2: int [E, 2]; `dst` can be influenced by `src` (`dst` follows
      `src`), as in `CascadeDataset.edges`.
    num_users: number of users; every id must be in `[0, num_users)`.
    symmetric: treat every edge as a tie both ways for influence too (e.g. an
      interaction graph used as a friendship proxy).

  Returns:
    The graph, with self loops and duplicate edges removed.
  """
  edges = np.asarray(edges_Ex2, dtype=np.int64).reshape(-1, 2)
  if edges.size and (edges.min() < 0 or edges.max() >= num_users):
    raise DataError(f'graph edge ids must be in [0, {num_users}), found '
                    f'{edges.min()}..{edges.max()}')
  edges = edges[edges[:, 0] != edges[:, 1]]
  src, dst = edges[:, 0], edges[:, 1]
  both_r, both_c = np.concatenate([src, dst]), np.concatenate([dst, src])
  links = _csr(both_r, both_c, num_users)
  influencers = links if symmetric else _csr(dst, src, num_users)
  return SocialGraph(num_users=num_users, influencers=influencers, links=links)


def _bitset_lcc_diameter(indptr, indices, num_nodes):
  """Exact LCC size and diameter by BFS from every node at once.

  Each node's reach set is a row of bits (uint64 words); one step ORs in the
  neighbours' sets. A node's eccentricity is the last step that changed its
  set; components are the final sets. Every node must have an edge.
  """
  words = (num_nodes + 63) // 64
  reach = np.zeros((num_nodes, words), np.uint64)
  node = np.arange(num_nodes)
  reach[node, node // 64] = np.left_shift(np.uint64(1),
                                          (node % 64).astype(np.uint64))
  ecc = np.zeros(num_nodes, np.int64)
  step = 0
  while True:
    step += 1
    grown = reach | np.bitwise_or.reduceat(reach[indices], indptr[:-1], axis=0)
    changed = np.any(grown != reach, axis=1)
    if not changed.any():
      break
    ecc[changed] = step
    reach = grown
  sizes = np.bitwise_count(reach).sum(axis=1)
  lcc = int(sizes.max())
  return lcc, int(ecc[sizes == lcc].max())


def _eccentricity(adj, node):
  """Eccentricity of `node` within its component, and a farthest node."""
  order, parent = csgraph.breadth_first_order(adj, node, directed=True,
                                              return_predecessors=True)
  far = int(order[-1])  # BFS visits by distance: the last one is farthest
  ecc, u = 0, far
  while u != node:
    u = parent[u]
    ecc += 1
  return ecc, far


def _sweep_lcc_diameter(indptr, indices, num_nodes):
  """LCC size exactly, its diameter by the 4-sweep lower bound."""
  adj = sparse.csr_matrix((np.ones(indices.shape[0], np.int8), indices, indptr),
                          shape=(num_nodes, num_nodes))
  _, labels = csgraph.connected_components(adj, directed=False)
  sizes = np.bincount(labels)
  lcc = int(sizes.max())
  degree = np.diff(indptr)
  diameter = 0
  for comp in np.flatnonzero(sizes == lcc):
    start = int(np.argmax(np.where(labels == comp, degree, -1)))
    best, node = _eccentricity(adj, start)
    for _ in range(_SWEEPS - 1):
      ecc, node = _eccentricity(adj, node)
      best = max(best, ecc)
    diameter = max(diameter, best)
  return lcc, diameter


def graph_rows(node_bins, edge_i, edge_j, edge_bins, num_bins, exact_limit):
  """Diameter and LCC rows [T] of one sample.

  Args:
    node_bins: [m] arrival bin of each node (node ids 0..m-1).
    edge_i, edge_j: [E] undirected edges (each once, no self loops).
    edge_bins: [E] arrival bin of each edge.
    num_bins: T.
    exact_limit: node count up to which the diameter is exact.
  """
  diameter = np.zeros(num_bins)
  lcc = np.zeros(num_bins)
  if node_bins.shape[0]:
    lcc[max(int(node_bins[0]), 0):] = 1
  num_edges = edge_i.shape[0]
  if not num_edges:
    return diameter, lcc
  order = np.argsort(edge_bins, kind='stable')
  edge_i, edge_j = edge_i[order], edge_j[order]
  edge_bins = np.maximum(edge_bins[order], 0)
  # Relabel nodes by their first edge: the first k edges touch nodes 0..m_k-1.
  ends = np.stack([edge_i, edge_j], axis=1).ravel()
  nodes, first_end = np.unique(ends, return_index=True)
  by_first = np.argsort(first_end)
  relabel = np.empty(node_bins.shape[0], np.int64)
  relabel[nodes[by_first]] = np.arange(nodes.shape[0])
  first_edge = first_end[by_first] // 2  # non-decreasing in the new labels
  edge_index = np.tile(np.arange(num_edges), 2)
  rows = np.concatenate([relabel[edge_i], relabel[edge_j]])
  cols = np.concatenate([relabel[edge_j], relabel[edge_i]])
  by_row = np.lexsort((cols, rows))
  rows, cols, edge_index = rows[by_row], cols[by_row], edge_index[by_row]
  for last in np.flatnonzero(np.diff(edge_bins, append=num_bins)):
    count = last + 1  # edges present at the end of bin edge_bins[last]
    keep = edge_index < count
    num_nodes = int(np.searchsorted(first_edge, count))
    indptr = np.searchsorted(rows[keep], np.arange(num_nodes + 1))
    solve = (_bitset_lcc_diameter if num_nodes <= exact_limit
             else _sweep_lcc_diameter)
    size, diam = solve(indptr, cols[keep], num_nodes)
    b = int(edge_bins[last])
    lcc[b:] = size
    diameter[b:] = diam
  return diameter, lcc
