"""CT-Bernoulli and CT-Jaccard (Goyal et al., WSDM 2010; paper §4.1;
equations.md A5).

Continuous-time propagation models over the social graph `G` (edge `v -> u`:
u can be influenced by v). From the training cascades:

* `A_v`: number of cascades v joined;
* `A_{v2u}`: number of cascades where v joined before u (earlier position)
  and `v -> u` is an edge of `G` (a "propagation");
* `A_{v|u}`: number of cascades with v or u (`A_v + A_u - A_{v&u}`);
* `p_{v,u} = A_{v2u} / A_v` (Bernoulli) or `A_{v2u} / A_{v|u}` (Jaccard);
* `tau_{v,u}`: mean delay `t_u - t_v` over the propagations (floored at
  1e-6 time units, so simultaneous propagations decay at once but stay
  defined).

Score of a candidate u at step k (predicting event k+1):
`1 - prod_{i <= k, u_i -> u} (1 - p_{u_i,u} exp(-(t_k - t_i) / tau_{u_i,u}))`.
`predict` returns the equivalent, monotone `-log(1 - score) = -sum_i
log(1 - p exp(-dt/tau))` (same ranking, no float32 rounding of scores near 0
or 1 into ties). Only edges with `A_{v2u} > 0` contribute (`p = 0` otherwise);
a user with no active in-neighbour along such an edge scores 0.

Both need the graph; a data set without one raises `ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.data import batching
from cyan_rcbm.data import types

KINDS = ('bernoulli', 'jaccard')
MODEL_NAMES = {'bernoulli': 'ct_bern', 'jaccard': 'ct_jac'}
GRAPH_DATA_SETS = ('synthetic_cp_exp', 'synthetic_cp_ray',
                   'synthetic_random_exp', 'synthetic_random_ray', 'android',
                   'christianity', 'topolstm_twitter')
TAU_FLOOR = 1e-6
# Pair x position elements evaluated per jitted call (bounds memory).
_CHUNK_ELEMENTS = 1 << 22
# log1p argument floor: p = 1 at dt = 0 gives a large finite score, not inf.
_LOG1P_FLOOR = -1.0 + 1e-7


@dataclasses.dataclass(frozen=True)
class PropagationCounts:
  """equations.md A5 counts over a set of cascades, per edge `src -> dst` of `G`."""
  joined: np.ndarray      # int64 [U]: A_v
  src: np.ndarray         # int32 [E]
  dst: np.ndarray         # int32 [E]
  propagated: np.ndarray  # int64 [E]: A_{v2u}
  both: np.ndarray        # int64 [E]: cascades containing both v and u
  delay_sum: np.ndarray   # float64 [E]: sum of t_u - t_v over propagations


def _require_graph(dataset: types.CascadeDataset, data_name: str,
                   model: str) -> np.ndarray:
  name = data_name or dataset.source or 'this data set'
  if dataset.edges is None or not len(dataset.edges):
    raise errors.ConfigError(
        f'{model} needs the social graph, but data set {name!r} has '
        f'{"no graph" if dataset.edges is None else "an empty graph"}. Built-in '
        f'sets with a graph: {", ".join(GRAPH_DATA_SETS)}; for your own data '
        'set, name the edge file in config.data.graph.')
  return np.asarray(dataset.edges, np.int64)


def propagation_counts(dataset: types.CascadeDataset,
                       edges_Ex2: np.ndarray) -> PropagationCounts:
  """Counts `A_v`, `A_{v2u}`, `A_{v&u}` and delay sums for every edge.

  Vectorised over all events: each event `(c, u)` is joined with the
  in-neighbours v of u and looked up as `(c, v)` in the sorted event keys.
  A user repeated in a cascade counts at its first activation.
  """
  num_users = dataset.num_users
  edges_Ex2 = np.asarray(edges_Ex2, np.int64).reshape(-1, 2)
  lengths = np.array([len(c) for c in dataset.cascades], np.int64)
  cascade_E = np.repeat(np.arange(len(lengths)), lengths)
  users_E = np.concatenate([np.asarray(c.users, np.int64)
                            for c in dataset.cascades])
  times_E = np.concatenate([np.asarray(c.times, np.float64)
                            for c in dataset.cascades])
  position_E = np.arange(users_E.size) - np.repeat(
      np.cumsum(lengths) - lengths, lengths)
  keys_E = cascade_E * num_users + users_E
  keys, first = np.unique(keys_E, return_index=True)  # first activations
  joined = np.bincount(keys % num_users, minlength=num_users)

  # In-neighbour lists (CSR over dst) and one (event, edge) row per pair.
  order = np.argsort(edges_Ex2[:, 1], kind='stable')
  indptr = np.concatenate([[0], np.cumsum(np.bincount(
      edges_Ex2[:, 1], minlength=num_users))])
  degree_E = indptr[users_E + 1] - indptr[users_E]
  event_P = np.repeat(np.arange(users_E.size), degree_E)
  offset_P = np.arange(event_P.size) - np.repeat(
      np.cumsum(degree_E) - degree_E, degree_E)
  edge_P = order[indptr[users_E][event_P] + offset_P]
  source_key = cascade_E[event_P] * num_users + edges_Ex2[edge_P, 0]
  slot = np.minimum(np.searchsorted(keys, source_key), max(keys.size - 1, 0))
  found = keys[slot] == source_key
  source_event = first[slot]
  # A pair counts at the target's first activation only.
  target_first = first[np.searchsorted(keys, keys_E[event_P])] == event_P
  found &= target_first
  propagated = found & (position_E[source_event] < position_E[event_P])
  num_edges = len(edges_Ex2)
  return PropagationCounts(
      joined=joined,
      src=edges_Ex2[:, 0].astype(np.int32),
      dst=edges_Ex2[:, 1].astype(np.int32),
      propagated=np.bincount(edge_P[propagated], minlength=num_edges),
      both=np.bincount(edge_P[found], minlength=num_edges),
      delay_sum=np.bincount(
          edge_P[propagated],
          weights=(times_E[event_P] - times_E[source_event])[propagated],
          minlength=num_edges))


@functools.partial(jax.jit, donate_argnums=(0,))
def _accumulate(neg_BxNxU, row_P, pos_P, dst_P, prob_P, tau_P, times_BxN,
                mask_BxN):
  """Adds `-log(1 - p exp(-(t_k - t_i)/tau))` of each pair to every k >= i."""
  n = times_BxN.shape[1]
  k_N = jnp.arange(n)
  ok_PxN = (k_N[None, :] >= pos_P[:, None]) & mask_BxN[row_P]
  dt_PxN = times_BxN[row_P] - times_BxN[row_P, pos_P][:, None]
  dt_PxN = jnp.where(ok_PxN, dt_PxN, 0.0)
  decayed = prob_P[:, None] * jnp.exp(-dt_PxN / tau_P[:, None])
  term = -jnp.log1p(jnp.maximum(-decayed, _LOG1P_FLOOR))
  term = jnp.where(ok_PxN, term, 0.0)
  return neg_BxNxU.at[row_P[:, None], k_N[None, :], dst_P[:, None]].add(term)


@dataclasses.dataclass(frozen=True)
class ContinuousTimeModel:
  """CT-Bernoulli or CT-Jaccard: learned edges `src -> dst` sorted by src."""
  kind: str
  num_users: int
  src: np.ndarray    # int32 [P]
  dst: np.ndarray    # int32 [P]
  prob: np.ndarray   # float32 [P], p_{v,u} > 0
  tau: np.ndarray    # float32 [P], tau_{v,u} >= TAU_FLOOR
  indptr: np.ndarray  # int64 [U + 1], CSR over src

  @property
  def name(self) -> str:
    return MODEL_NAMES[self.kind]

  @classmethod
  def fit(cls, train: types.CascadeDataset, kind: str = 'bernoulli', *,
          data_name: str = '', max_events: int = 0) -> ContinuousTimeModel:
    """Estimates `p` and `tau` of every edge from the training cascades.

    Args:
      train: training cascades with `edges` (the social graph).
      kind: 'bernoulli' or 'jaccard'.
      data_name: the data set's name, for the missing-graph error.
      max_events: keep the last `max_events` events of each cascade (0: all).

    Raises:
      ConfigError: unknown kind, or the data set has no graph.
    """
    if kind not in KINDS:
      raise errors.ConfigError(f'CT kind must be one of {KINDS}; got {kind!r}.')
    edges = _require_graph(train, data_name, f'CT-{kind.capitalize()}')
    if max_events:
      train = dataclasses.replace(train, cascades=tuple(
          dataclasses.replace(
              c, users=c.users[-max_events:], times=c.times[-max_events:],
              parents=None, timestamps=None) for c in train.cascades))
    _common.check_fittable(train)
    counts = propagation_counts(train, edges)
    keep = counts.propagated > 0
    src, dst = counts.src[keep], counts.dst[keep]
    hits = counts.propagated[keep].astype(np.float64)
    if kind == 'bernoulli':
      denominator = counts.joined[src]
    else:
      denominator = (counts.joined[src] + counts.joined[dst] -
                     counts.both[keep])
    prob = hits / denominator
    tau = np.maximum(counts.delay_sum[keep] / hits, TAU_FLOOR)
    order = np.argsort(src, kind='stable')
    src, dst, prob, tau = src[order], dst[order], prob[order], tau[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(
        src, minlength=train.num_users))])
    return cls(kind, train.num_users, src, dst, prob.astype(np.float32),
               tau.astype(np.float32), indptr)

  def predict(self, batch: batching.Batch):
    """`(-log(1 - score) [B, N, U], None, None)` (module docstring)."""
    users = np.asarray(batch.users)
    mask = np.asarray(batch.mask)
    b, n = users.shape
    row_E, pos_E = np.nonzero(mask)
    user_E = users[row_E, pos_E]
    degree_E = self.indptr[user_E + 1] - self.indptr[user_E]
    pair_event = np.repeat(np.arange(user_E.size), degree_E)
    edge_P = (self.indptr[user_E][pair_event] + np.arange(pair_event.size) -
              np.repeat(np.cumsum(degree_E) - degree_E, degree_E))
    chunk = max(256, 1 << int(np.log2(max(_CHUNK_ELEMENTS // n, 1))))
    total = max(chunk, -(-edge_P.size // chunk) * chunk)
    pad = total - edge_P.size

    def padded(values, fill=0):
      return np.concatenate([values, np.full(pad, fill, values.dtype)])

    row_P = padded(row_E[pair_event].astype(np.int32))
    pos_P = padded(pos_E[pair_event].astype(np.int32), n)  # never reached
    dst_P = padded(self.dst[edge_P])
    prob_P = padded(self.prob[edge_P])
    tau_P = padded(self.tau[edge_P], 1.0)
    times = jnp.asarray(batch.times, jnp.float32)
    mask_j = jnp.asarray(mask)
    neg = jnp.zeros((b, n, self.num_users), jnp.float32)
    for start in range(0, total, chunk):
      piece = slice(start, start + chunk)
      neg = _accumulate(neg, row_P[piece], pos_P[piece], dst_P[piece],
                        prob_P[piece], tau_P[piece], times, mask_j)
    return neg, None, None
