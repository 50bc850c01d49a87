"""Transition prior from training counts: an extension beyond the paper.

Not in CYAN-RNN. With `model.transition_prior = True` the user logits of
every variant get a term read from the training set's first-order
transition counts `C[v, u]` (how often `u` directly follows `v` in a
training cascade, the counts of MC-1):

    logits_k[u] += w_t * log(1 + A_k[u]),
    A_k[u] = sum_{j = k-W+1..k} decay^(k-j) C[u_j, u]

over the last `W = model.prior_window` events of the cascade, with a
learned weight `w_t` (initial 1). Each user keeps only its
`model.prior_top_m` most frequent successors. The network then learns what
the counts cannot say (rare users, long-range influence, timing) instead of
memorising a U x U table through a low-rank output layer.

Training batches come from the same cascades as the counts, so there the
pair `(u_k, u_{k+1})` of the event being predicted is left out of `A_k`
(leave-one-out: its count minus 1), otherwise the model would learn to
trust the counts more than they deserve on unseen cascades.

The counts are fixed statistics stored with the parameters (`prior_users`,
`prior_counts`, [U, M] float32; users as exact small integers) so that
checkpoints and saved models carry them; the model reads them through
`stop_gradient`, so their Adam updates are exactly 0.

Three more features of the same form, each with its own learned weight:
the counts of users within `model.prior_reach` events after `v` (not only
directly after), weight initial 1, with leave-one-out over every pair the
predicted event put into them; the graph (when the data has one): `log(1 + G_k[u])`, `G_k` the decayed count
of recent events whose user has an edge to `u` (the first `prior_top_m`
out-neighbours of each user, most active first), weight initial 1; and
popularity: the log share `log q(u)` of training activations, weight
initial 0 (so an untrained model ranks by the counts; one scalar learns
how much popularity adds).

`popularity_bias` (also an extension) initialises the output bias with the
log share of training activations of each user.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.data import types

# float32 holds every integer below 2^24 exactly.
MAX_USERS = 2 ** 24


def _top_per_row(rows, cols, values, priority, num_users: int, top_m: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """`(users [U, M] int32, values [U, M] float32)`: each row's `top_m` entries.

  Within a row, entries with larger `priority` come first, ties by smaller
  column; unused slots hold user 0 with value 0.
  """
  if num_users >= MAX_USERS:
    raise errors.ConfigError(
        f'model.transition_prior supports fewer than {MAX_USERS} users; the '
        f'data has {num_users}.')
  order = np.lexsort((cols, -priority, rows))
  rows, cols, values = rows[order], cols[order], values[order]
  rank = np.arange(rows.size) - np.searchsorted(rows, rows, side='left')
  keep = rank < top_m
  users_UxM = np.zeros((num_users, top_m), np.int32)
  values_UxM = np.zeros((num_users, top_m), np.float32)
  users_UxM[rows[keep], rank[keep]] = cols[keep]
  values_UxM[rows[keep], rank[keep]] = values[keep]
  return users_UxM, values_UxM


def successor_table(train: types.CascadeDataset, num_users: int,
                    top_m: int, reach: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Each user's `top_m` most frequent training successors.

  A successor of `v` is a user that follows `v` within `reach` events of a
  training cascade (`reach = 1`: directly, MC-1's counts).

  Returns:
    `(users [U, M] int32, counts [U, M] float32)`: successor ids (ties by
    smaller id) and their counts; unused slots hold user 0 with count 0.
  """
  src, dst = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
  for cascade in train.cascades:
    users = np.asarray(cascade.users, np.int64)
    for step in range(1, reach + 1):
      src.append(users[:-step])
      dst.append(users[step:])
  pairs, counts = np.unique(np.concatenate(src) * num_users +
                            np.concatenate(dst), return_counts=True)
  return _top_per_row(pairs // num_users, pairs % num_users, counts, counts,
                      num_users, top_m)


def graph_table(edges: np.ndarray, log_share: np.ndarray, num_users: int,
                top_m: int) -> tuple[np.ndarray, np.ndarray]:
  """Each user's `top_m` graph out-neighbours (most active first), count 1.

  An edge `(src, dst)` says dst can be influenced by src, so an active src
  raises the score of dst. Returns the `successor_table` layout.
  """
  src, dst = np.asarray(edges, np.int64).T
  return _top_per_row(src, dst, np.ones(src.size), log_share[dst], num_users,
                      top_m)


def popularity_log_share(train: types.CascadeDataset,
                         num_users: int) -> np.ndarray:
  """`log((n_u + 1) / (n + U))`: add-one share of training activations."""
  n_u = np.zeros(num_users, np.float64)
  for cascade in train.cascades:
    np.add.at(n_u, np.asarray(cascade.users, np.int64), 1.0)
  return np.log((n_u + 1.0) / (n_u.sum() + num_users)).astype(np.float32)


def recent_users(users_BxN: jax.Array, mask_BxN: jax.Array,
                 window: int) -> tuple[jax.Array, jax.Array]:
  """The last `window` events at every position: `([B, N, W], valid)`.

  Slot `w` of position `k` holds event `k - window + 1 + w` (the newest
  last), valid when that event exists.
  """
  pad = window - 1
  users = jnp.pad(users_BxN, ((0, 0), (pad, 0)))
  valid = jnp.pad(jnp.asarray(mask_BxN, bool), ((0, 0), (pad, 0)))
  n = users_BxN.shape[1]
  take = lambda a: jnp.stack([a[:, w:w + n] for w in range(window)], -1)
  return take(users), take(valid)


def _entries(succ_users_UxM, succ_counts_UxM, recent_XxW, valid_XxW,
             decay: float, leave_out_X, reach: int = 1):
  """The weighted successor entries of each window: `(users, counts)` [X, W M].

  Entry `(w, m)` is successor m of the user in slot w, with count
  `decay^age C`; `leave_out_X` (optional) takes one off the count of that
  user after each of the last `reach` events (the pairs the predicted event
  itself put into the counts).
  """
  window = recent_XxW.shape[-1]
  idx = succ_users_UxM.astype(jnp.int32)[recent_XxW]   # [..., W, M]
  ages = jnp.arange(window - 1, -1, -1, dtype=jnp.float32)
  weight = jnp.where(valid_XxW, decay ** ages, 0.0)    # [..., W]
  vals = succ_counts_UxM[recent_XxW] * weight[..., None]
  if leave_out_X is not None:
    counted = (jnp.arange(window) >= window - reach) & valid_XxW  # [..., W]
    hit = idx == leave_out_X[..., None, None]
    vals = vals - jnp.where(hit & counted[..., None], weight[..., None], 0.0)
  lead = recent_XxW.shape[:-1]
  return idx.reshape(lead + (-1,)), vals.reshape(lead + (-1,))


def log_prior(succ_users_UxM: jax.Array, succ_counts_UxM: jax.Array,
              recent_XxW: jax.Array, valid_XxW: jax.Array, decay: float,
              num_users: int, leave_out_X: jax.Array | None = None,
              reach: int = 1) -> jax.Array:
  """`log(1 + A)` [..., U] for windows of recent users `[..., W]`.

  Args:
    succ_users_UxM, succ_counts_UxM: `successor_table`.
    recent_XxW, valid_XxW: the window of each row (newest last) and which
      slots hold events.
    decay: weight `decay^age` of an event `age` events back.
    num_users: U.
    leave_out_X: optional next user of each row: its count after each of
      the last `reach` events is reduced by one (leave-one-out on training
      cascades whose pairs are in the counts).
    reach: the `successor_table` reach of the counts.
  """
  idx, vals = _entries(succ_users_UxM, succ_counts_UxM, recent_XxW,
                       valid_XxW, decay, leave_out_X, reach)
  lead = idx.shape[:-1]
  rows = int(np.prod(lead)) if lead else 1
  acc = jnp.zeros((rows, num_users), vals.dtype).at[
      jnp.arange(rows)[:, None], idx.reshape(rows, -1)].add(
          vals.reshape(rows, -1))
  return jnp.log1p(jnp.maximum(acc, 0.0)).reshape(lead + (num_users,))


def log_prior_at(succ_users_UxM: jax.Array, succ_counts_UxM: jax.Array,
                 recent_XxW: jax.Array, valid_XxW: jax.Array, decay: float,
                 num_users: int, targets_X: jax.Array,
                 candidates_K: jax.Array, leave_one_out: bool,
                 reach: int = 1) -> tuple[jax.Array, jax.Array]:
  """`log_prior` at each row's target [X] and at shared candidates [X, K].

  The sampled-softmax form: never builds the [X, U] accumulator. The
  candidates must be distinct users.
  """
  idx, vals = _entries(succ_users_UxM, succ_counts_UxM, recent_XxW,
                       valid_XxW, decay, targets_X if leave_one_out else None,
                       reach)
  at_target = jnp.sum(jnp.where(idx == targets_X[..., None], vals, 0.0), -1)
  k = candidates_K.shape[0]
  slot_of = jnp.full((num_users,), k, jnp.int32).at[candidates_K].set(
      jnp.arange(k, dtype=jnp.int32))
  lead = idx.shape[:-1]
  rows = int(np.prod(lead)) if lead else 1
  acc = jnp.zeros((rows, k + 1), vals.dtype).at[
      jnp.arange(rows)[:, None], slot_of[idx].reshape(rows, -1)].add(
          vals.reshape(rows, -1))[:, :k]
  clip = lambda a: jnp.log1p(jnp.maximum(a, 0.0))
  return clip(at_target), clip(acc).reshape(lead + (k,))


def install(params: dict, model_config, train: types.CascadeDataset,
            num_users: int) -> dict:
  """`params` with the training statistics the config asks for filled in.

  `model.transition_prior`: the successor table; `model.popularity_bias`:
  the output bias (a linear head's, or the last layer of the MLP head).
  """
  params = dict(params)
  if model_config.get('transition_prior', False):
    top_m = model_config.prior_top_m
    for name, reach in (('prior', 1),
                        ('prior_near', model_config.get('prior_reach', 1))):
      users, counts = successor_table(train, num_users, top_m, reach)
      params[f'{name}_users'] = jnp.asarray(users, jnp.float32)
      params[f'{name}_counts'] = jnp.asarray(counts)
    share = popularity_log_share(train, num_users)
    params['prior_log_share'] = jnp.asarray(share)
    if train.edges is not None and len(train.edges):
      users, counts = graph_table(train.edges, share, num_users, top_m)
      params['prior_graph_users'] = jnp.asarray(users, jnp.float32)
      params['prior_graph_counts'] = jnp.asarray(counts)
  if model_config.get('popularity_bias', False):
    head = dict(params['head'])
    if 'layers' in head:  # nnx.Sequential: Linear, tanh, Linear
      layers = dict(head['layers'])
      last = max(layers)
      layers[last] = dict(layers[last], bias=jnp.asarray(
          popularity_log_share(train, num_users)))
      head['layers'] = layers
    else:
      head['bias'] = jnp.asarray(popularity_log_share(train, num_users))
    params['head'] = head
  return params
