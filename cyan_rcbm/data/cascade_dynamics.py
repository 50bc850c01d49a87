"""Twitter-style dynamics from cascades with a social graph (SPEC B8).

RCBM's Twitter features (paper, "Dataset Description"): per time bin, the
numbers of *initiators* (first use, before any friend used it), *first-time*
users of each kind (first use, after some friend used it), *recurring* users
of each kind (used it before themselves), and the *diameter* and the size of
the *largest connected component* (LCC) of the graph of users who used it so
far. This module computes them for events grouped in samples (`event_features`,
shared with `cyan_rcbm.data.higgs`) and for a `CascadeDataset` with a follower
graph (`cascade_dynamics`, one sample per cascade, one kind: propagation).

Definitions, for one sample (events sorted by time, ties in input order):

* an event is the actor's *first* if the actor has no earlier event in the
  sample, otherwise *recurring*; each event counts in exactly one count
  feature, so the count rows of a bin sum to the events in that bin;
* a first event is an *initiator*'s if none of the actor's friends
  (influencers: for a follower graph the followees, i.e. `src` of the edges
  `src -> actor`) had an event in the sample at a strictly earlier time;
  otherwise it is a first-time user of the event's kind;
* the graph of a bin: the actors whose first event is at or before the end
  of the bin, with the social graph's edges among them taken as undirected
  (weak connectivity). LCC = its largest component's number of nodes (0
  before the first actor); diameter = the longest shortest path (in hops)
  within the LCC (0 for a single node; the largest value if several
  components tie for largest). The diameter is exact when at most
  `exact_diameter_limit` nodes (default 1000) have an edge: BFS from every
  node at once on bit sets (`_bitset_lcc_diameter`, ~5 ms for 1000 nodes).
  Above that it is the 4-sweep lower bound (BFS from the highest-degree node
  of the LCC, then three times from the farthest node found, keeping the
  largest eccentricity), exact on trees and usually exact on sparse social
  graphs. Both are recomputed only at the end of a bin that adds edges.
* events before the window (bin < 0) are history: they make later events
  recurring, count as earlier friends and are nodes of the graph from bin 0,
  but are not counted in any bin; events at or after the window's end are
  ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from cyan_rcbm.data.types import CascadeDataset, Dynamics
from cyan_rcbm.errors import ConfigError, DataError

CASCADE_FEATURES = ('initiators', 'first_time_propagators',
                    'recurring_adopters', 'diameter', 'lcc_size')
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


def _expand(csr, users):
  """For each user, its CSR neighbours: (owner index [P], neighbour [P])."""
  indptr, indices = csr
  start = indptr[users]
  deg = indptr[users + 1] - start
  owner = np.repeat(np.arange(users.shape[0]), deg)
  offsets = np.arange(owner.shape[0]) - np.repeat(np.cumsum(deg) - deg, deg)
  return owner, indices[np.repeat(start, deg) + offsets]


def _lookup(sorted_keys, keys):
  """Index of each key in sorted_keys, -1 where absent."""
  pos = np.searchsorted(sorted_keys, keys)
  pos_c = np.minimum(pos, max(sorted_keys.shape[0] - 1, 0))
  found = (sorted_keys.shape[0] > 0) & (sorted_keys[pos_c] == keys)
  return np.where(found, pos_c, -1)


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


def _graph_rows(node_bins, edge_i, edge_j, edge_bins, num_bins, exact_limit):
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


def event_features(starts: np.ndarray, actors: np.ndarray, times: np.ndarray,
                   bins: np.ndarray, kinds: np.ndarray, graph: SocialGraph, *,
                   num_bins: int, num_kinds: int = 1,
                   exact_diameter_limit: int = DEFAULT_EXACT_DIAMETER_LIMIT
                   ) -> np.ndarray:
  """The B8 features of events grouped into samples (see the module doc).

  Args:
    starts: int [n+1]; sample s holds events `starts[s]:starts[s+1]`, sorted
      by time (ties keep their order).
    actors: int [M] user ids in `[0, graph.num_users)`.
    times: [M] event times (for "strictly earlier").
    bins: int [M] time bin of each event in the sample's window: < 0 is
      history, >= num_bins is ignored; non-decreasing within a sample.
    kinds: int [M] in `[0, num_kinds)` (e.g. 0 propagation, 1 comment).
    graph: the social graph.
    num_bins: T.
    num_kinds: number of kinds.
    exact_diameter_limit: number of nodes with an edge up to which the
      diameter is exact (above: 4-sweep lower bound).

  Returns:
    float32 [n, 1 + 2 * num_kinds + 2, T]: initiators, first-time per kind,
    recurring per kind, diameter, LCC size.
  """
  starts = np.asarray(starts, np.int64)
  n = starts.shape[0] - 1
  keep = np.asarray(bins) < num_bins
  sample = np.repeat(np.arange(n), np.diff(starts))[keep]
  actors = np.asarray(actors, np.int64)[keep]
  times = np.asarray(times)[keep]
  bins = np.asarray(bins, np.int64)[keep]
  kinds = np.asarray(kinds, np.int64)[keep]
  num_users = graph.num_users
  if actors.size and (actors.min() < 0 or actors.max() >= num_users):
    raise DataError(f'actor ids must be in [0, {num_users})')
  if kinds.size and (kinds.min() < 0 or kinds.max() >= num_kinds):
    raise DataError(f'event kinds must be in [0, {num_kinds})')

  key = sample * num_users + actors
  _, first = np.unique(key, return_index=True)  # first event of each pair
  first.sort()  # arrival order within each sample
  pair_key = key[first]
  pair_sample = sample[first]
  pair_order = np.argsort(pair_key)
  sorted_keys = pair_key[pair_order]

  def neighbours_in_sample(csr):
    owner, nb = _expand(csr, actors[first])
    idx = _lookup(sorted_keys, pair_sample[owner] * num_users + nb)
    found = idx >= 0
    return owner[found], pair_order[idx[found]]

  owner_i, friend = neighbours_in_sample(graph.influencers)
  earlier = times[first][friend] < times[first][owner_i]
  has_earlier_friend = np.zeros(first.shape[0], bool)
  has_earlier_friend[owner_i[earlier]] = True

  is_first = np.zeros(actors.shape[0], bool)
  is_first[first] = True
  feature = 1 + num_kinds + kinds  # recurring
  feature[first] = np.where(has_earlier_friend, 1 + kinds[first], 0)
  num_features = 1 + 2 * num_kinds + 2
  counted = bins >= 0
  flat = (sample * num_features + feature) * num_bins + bins
  x = np.bincount(flat[counted], minlength=n * num_features * num_bins)
  x = x.reshape(n, num_features, num_bins).astype(np.float64)

  if graph.links is graph.influencers:
    link_i, link_j = owner_i, friend
  else:
    link_i, link_j = neighbours_in_sample(graph.links)
  one_way = link_i < link_j  # each undirected edge once; j arrives later
  link_i, link_j = link_i[one_way], link_j[one_way]
  pair_bins = bins[first]
  pair_starts = np.searchsorted(pair_sample, np.arange(n + 1))
  edge_order = np.argsort(pair_sample[link_i], kind='stable')
  link_i, link_j = link_i[edge_order], link_j[edge_order]
  edge_starts = np.searchsorted(pair_sample[link_i], np.arange(n + 1))
  for s in range(n):
    p0, p1 = pair_starts[s], pair_starts[s + 1]
    e0, e1 = edge_starts[s], edge_starts[s + 1]
    ei, ej = link_i[e0:e1] - p0, link_j[e0:e1] - p0
    x[s, -2], x[s, -1] = _graph_rows(
        pair_bins[p0:p1], ei, ej, pair_bins[link_j[e0:e1]], num_bins,
        exact_diameter_limit)
  return x.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CascadeSamples:
  """Cascade dynamics plus per-cascade side information (not part of `x`).

  Attributes:
    dynamics: x float32 [n, 5, T] (`CASCADE_FEATURES`), ids = cascade ids.
    window_events: int64 [n] events inside the window.
    later_events: int64 [n] events after the window (a forecasting target:
      the cascade's growth after what the sample shows).
  """
  dynamics: Dynamics
  window_events: np.ndarray
  later_events: np.ndarray

  def extras(self) -> dict[str, np.ndarray]:
    """The side arrays, for `cyan_rcbm.data.dynamics.write_dynamics`."""
    return {'window_events': self.window_events,
            'later_events': self.later_events}


def cascade_dynamics(dataset: CascadeDataset, **kwargs) -> Dynamics:
  """`cascade_samples(dataset, **kwargs).dynamics` (interface D)."""
  return cascade_samples(dataset, **kwargs).dynamics


def cascade_samples(dataset: CascadeDataset, *, num_bins: int = 60,
                    window: str = 'horizon', horizon: float | None = None,
                    exact_diameter_limit: int = DEFAULT_EXACT_DIAMETER_LIMIT
                    ) -> CascadeSamples:
  """One B8 sample per cascade (SPEC B8), from a cascade set with a graph.

  Binning: each cascade's clock starts at its first event. With
  `window='horizon'` the window is the first `horizon` time units (default:
  the median cascade duration of the set, so that samples share one absolute
  time scale as in the paper's per-minute Twitter samples), split in
  `num_bins` equal bins; later events are ignored. With `window='duration'`
  each cascade's own duration is split in `num_bins` bins (shapes comparable,
  absolute rates not). An event exactly at the window's end falls in the
  last bin.

  Features (`CASCADE_FEATURES`): initiators, first-time propagators,
  recurring adopters (zero when the reader removed repeated users), diameter
  and LCC size of the adopters' induced follower graph so far (module doc).

  Args:
    dataset: cascades with `edges` (`src -> dst`: dst follows src).
    num_bins: T.
    window: 'horizon' or 'duration'.
    horizon: window length in the dataset's time unit ('horizon' only).
    exact_diameter_limit: number of nodes with an edge up to which the
      diameter is exact (above: 4-sweep lower bound).

  Returns:
    `CascadeSamples`: x [num_cascades, 5, num_bins], ids = cascade ids,
    `source` states the window and how many events fell after it.
  """
  if dataset.edges is None:
    raise DataError('cascade dynamics need a follower graph (dataset.edges is '
                    'None)', path=dataset.source or None)
  if len(dataset) == 0:
    raise DataError('no cascades', path=dataset.source or None)
  if int(num_bins) != num_bins or num_bins < 1:
    raise ConfigError(f'num_bins must be a positive integer, got {num_bins!r}')
  if window not in ('horizon', 'duration'):
    raise ConfigError(f"window must be 'horizon' or 'duration', got {window!r}")
  lengths = np.array([len(c) for c in dataset.cascades], np.int64)
  starts = np.concatenate([[0], np.cumsum(lengths)])
  users = np.concatenate([np.asarray(c.users, np.int64) for c in dataset.cascades])
  times = np.concatenate([np.asarray(c.times, np.float64) for c in dataset.cascades])
  sample = np.repeat(np.arange(len(dataset)), lengths)
  order = np.lexsort((np.arange(times.shape[0]), times, sample))
  users, times = users[order], times[order]
  t0 = times[starts[:-1]]
  durations = times[starts[1:] - 1] - t0
  if window == 'horizon':
    if horizon is None:
      horizon = float(np.median(durations))
    if not horizon > 0:
      raise ConfigError(f'horizon must be > 0, got {horizon!r} (the median '
                        'cascade duration when not given)')
    span = np.full(len(dataset), float(horizon))
  else:
    span = np.where(durations > 0, durations, 1.0)
  rel = (times - t0[sample]) / span[sample]
  bins = np.floor(rel * num_bins).astype(np.int64)
  bins[rel == 1.0] = num_bins - 1
  graph = social_graph(dataset.edges, dataset.num_users)
  x = event_features(starts, users, times, bins, np.zeros_like(bins), graph,
                     num_bins=num_bins, num_kinds=1,
                     exact_diameter_limit=exact_diameter_limit)
  after = bins >= num_bins
  later = np.bincount(sample[after], minlength=len(dataset)).astype(np.int64)
  desc = (f'horizon={horizon:g} {dataset.time_unit}' if window == 'horizon'
          else 'per-cascade duration')
  dyn = Dynamics(
      x=x, feature_names=list(CASCADE_FEATURES),
      ids=[str(c.id) for c in dataset.cascades],
      source=(f'cascade_dynamics({dataset.source or "cascades"}; {num_bins} '
              f'bins over {desc}; {int(after.sum())} of {times.shape[0]} '
              'events after the window ignored)'))
  return CascadeSamples(dynamics=dyn, window_events=lengths - later,
                        later_events=later)


def feature_names(kinds: Sequence[str]) -> list[str]:
  """Row names of `event_features` for the given kind names."""
  return (['initiators'] + [f'first_time_{k}' for k in kinds]
          + [f'recurring_{k}' for k in kinds] + ['diameter', 'lcc_size'])
