"""Twitter-style dynamics from cascades with a social graph (equations.md B8).

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
  components tie for largest). `cyan_rcbm.data.graph_features` computes
  them (exactly up to `exact_diameter_limit` nodes with an edge, else the
  diameter is a 4-sweep lower bound) at the end of each bin that adds edges.
* events before the window (bin < 0) are history: they make later events
  recurring, count as earlier friends and are nodes of the graph from bin 0,
  but are not counted in any bin; events at or after the window's end are
  ignored.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from cyan_rcbm.data import readers
from cyan_rcbm.data import registry
from cyan_rcbm.data.graph_features import (DEFAULT_EXACT_DIAMETER_LIMIT,
                                           SocialGraph, graph_rows,
                                           social_graph)
from cyan_rcbm.data.types import CascadeDataset, Dynamics
from cyan_rcbm.errors import ConfigError, DataError

CASCADE_FEATURES = ('initiators', 'first_time_propagators',
                    'recurring_adopters', 'diameter', 'lcc_size')


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
    x[s, -2], x[s, -1] = graph_rows(
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
  """One B8 sample per cascade (equations.md B8), from a cascade set with a
  graph.

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


def read_pooled_set(name: str, *, graph_direction: str = 'forward'
                    ) -> CascadeDataset:
  """All files of a shipped cascade set with its follower graph, pooled.

  One vocab over the files, repeated users kept (`duplicate_users='keep'`),
  cascades of every length, the graph attached; with several files, cascade
  ids are prefixed by the file's key (`train:12`), since ids may repeat
  across files. This is the input of `cascade_samples` for the shipped sets.

  Args:
    name: a `registry.BUILTIN` set with a graph (android, christianity,
      topolstm_twitter).
    graph_direction: see `readers.ReadOptions`.

  Raises:
    ConfigError: `name` is not a shipped set with a graph.
  """
  with_graph = tuple(k for k, b in registry.BUILTIN.items()
                     if b.graph is not None)
  if name not in with_graph:
    raise ConfigError(f'{name!r} is not a shipped cascade set with a '
                      f'follower graph; valid: {with_graph}')
  builtin = registry.BUILTIN[name]
  root = registry.data_root()
  options = readers.ReadOptions(min_length=1, duplicate_users='keep',
                                lenient=builtin.lenient,
                                graph_direction=graph_direction)
  vocab, cascades, dataset = {}, [], None
  keys = list(builtin.files)
  for k in keys:
    graph = os.path.join(root, builtin.graph) if k == keys[-1] else None
    dataset, _ = readers.read_cascades(
        os.path.join(root, builtin.files[k]), builtin.format, vocab=vocab,
        graph_path=graph, options=options)
    prefix = f'{k}:' if len(keys) > 1 else ''
    cascades += [dataclasses.replace(c, id=prefix + c.id)
                 for c in dataset.cascades]
  return dataclasses.replace(dataset, cascades=tuple(cascades), source=name)
