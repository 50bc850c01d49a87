"""Planted dynamics from the CBM generative model (equations.md B3), in numpy.

`X_i = sum_k W_k (x) h_ik + noise`, with

* filters `W_k` [D, Tw], non-negative and smooth, `||W_k||_F = 1`. Each filter
  uses a random subset of the D features (each feature kept with probability
  1/2, at least one); an active row is a Gaussian bump with a random centre in
  `[0, Tw-1]`, a random width in `[0.6, Tw/3]` and a random amplitude in
  `[0.3, 1]`. Bumps read like the bursts of the paper's Figs. 9-10 and are easy
  to compare by eye with learned filters.
* activations `h_ik` [S], `S = T + Tw - 1`, `h >= 0`: support
  Bernoulli(`density`) per entry, amplitudes Exponential(1) (the paper's
  bursty exponential prior, Eq. 3).
* noise: i.i.d. Gaussian with standard deviation `noise` (absolute, in the
  units of X).

`(x)` is equations.md B2's "valid" per-row convolution
`(W (x) h)[d, t] = sum_tau W[d, tau] h[t + Tw - 1 - tau]` (Eq. 2), written
here in numpy (`convolve`); the JAX version lives in `cyan_rcbm.rcbm.ops`.

Random streams are split by purpose, so the filters of a given `seed` are the
same in `make_planted` and `make_planted_anomalies` (normal samples of the
latter are fresh draws from the same filters: a model trained on
`make_planted(seed=s)` can score `make_planted_anomalies(seed=s)`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cyan_rcbm.data.types import Dynamics
from cyan_rcbm.errors import ConfigError

# Streams of np.random.default_rng([seed, stream]).
_FILTERS, _ACTIVATIONS, _NOISE = 0, 1, 2
_NORMAL_H, _NORMAL_NOISE = 3, 4
_FOREIGN_W, _FOREIGN_H, _FOREIGN_NOISE = 5, 6, 7
_SHUFFLE_H, _SHUFFLE_NOISE, _SHUFFLE_PERM, _ORDER = 8, 9, 10, 11

NORMAL, FOREIGN_FILTERS, SHUFFLED_ROWS = 0, 1, 2
LABEL_NAMES = ('normal', 'foreign_filters', 'shuffled_rows')


def convolve(w_KxDxTw: np.ndarray, h_NxKxS: np.ndarray) -> np.ndarray:
  """`sum_k W_k (x) h_k` for every sample (equations.md B2, Eq. 2), "valid"
  mode.

  Args:
    w_KxDxTw: filters.
    h_NxKxS: activations, `S = T + Tw - 1`.

  Returns:
    x_NxDxT with `x[n, d, t] = sum_k sum_tau w[k, d, tau] h[n, k, t+Tw-1-tau]`.
  """
  w_KxDxTw = np.asarray(w_KxDxTw)
  h_NxKxS = np.asarray(h_NxKxS)
  tw = w_KxDxTw.shape[-1]
  if h_NxKxS.shape[-1] < tw:
    raise ValueError(f'activations of length {h_NxKxS.shape[-1]} are shorter '
                     f'than the filters ({tw})')
  # windows[n, k, t, j] = h[n, k, t + j]; j = Tw - 1 - tau.
  windows_NxKxTxTw = np.lib.stride_tricks.sliding_window_view(
      h_NxKxS, tw, axis=-1)
  return np.einsum('nktj,kdj->ndt', windows_NxKxTxTw, w_KxDxTw[..., ::-1],
                   optimize=True)


def _check_args(num_samples, num_features, length, num_filters, filter_length,
                noise, density):
  for name, value in (('num_samples', num_samples),
                      ('num_features', num_features), ('length', length),
                      ('num_filters', num_filters),
                      ('filter_length', filter_length)):
    if int(value) != value or value < 1:
      raise ConfigError(f'{name} must be a positive integer, got {value!r}')
  if filter_length > length:
    raise ConfigError(f'filter_length ({filter_length}) must not exceed '
                      f'length ({length})')
  if not noise >= 0:
    raise ConfigError(f'noise must be >= 0, got {noise!r}')
  if not 0 < density <= 1:
    raise ConfigError(f'density must be in (0, 1], got {density!r}')


def _rng(seed: int, stream: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), stream])


def make_filters(num_filters: int, num_features: int, filter_length: int,
                 rng: np.random.Generator) -> np.ndarray:
  """Random non-negative smooth filters with `||W_k||_F = 1` (module doc)."""
  k, d, tw = num_filters, num_features, filter_length
  tau = np.arange(tw, dtype=np.float64)
  centre = rng.uniform(0.0, tw - 1.0, size=(k, d, 1))
  width = rng.uniform(0.6, max(tw / 3.0, 0.6), size=(k, d, 1))
  amplitude = rng.uniform(0.3, 1.0, size=(k, d, 1))
  active = rng.random((k, d)) < 0.5
  active[np.arange(k), rng.integers(0, d, size=k)] = True  # >= 1 row each
  w = amplitude * np.exp(-0.5 * ((tau - centre) / width) ** 2)
  w *= active[..., None]
  return w / np.linalg.norm(w.reshape(k, -1), axis=1)[:, None, None]


def make_activations(num_samples: int, num_filters: int, size: int,
                     density: float, rng: np.random.Generator) -> np.ndarray:
  """Sparse non-negative activations: Bernoulli(density) x Exponential(1)."""
  shape = (num_samples, num_filters, size)
  support = rng.random(shape) < density
  return np.where(support, rng.exponential(1.0, size=shape), 0.0)


def _sample(w, h, noise, rng):
  x = convolve(w, h)
  if noise > 0:
    x = x + noise * rng.standard_normal(x.shape)
  return x


def _feature_names(d: int) -> list[str]:
  return [f'f{j}' for j in range(d)]


def make_planted(num_samples: int, num_features: int = 7, length: int = 60,
                 num_filters: int = 5, filter_length: int = 7,
                 noise: float = 0.05, density: float = 0.02, seed: int = 0
                 ) -> tuple[Dynamics, np.ndarray, np.ndarray]:
  """Samples from the CBM generative model (equations.md B3; paper Eqs. 1-3).

  Args:
    num_samples: n.
    num_features: D.
    length: T.
    num_filters: K.
    filter_length: Tw.
    noise: standard deviation of the additive Gaussian noise.
    density: probability that an activation entry is non-zero.
    seed: random seed (filters, activations and noise use separate streams).

  Returns:
    (dynamics with x float32 [n, D, T], filters W float64 [K, D, Tw] with unit
    Frobenius norm, activations h float64 [n, K, T + Tw - 1]). With
    `noise=0`, `x == convolve(W, h)` up to float32 rounding.
  """
  _check_args(num_samples, num_features, length, num_filters, filter_length,
              noise, density)
  w = make_filters(num_filters, num_features, filter_length,
                   _rng(seed, _FILTERS))
  h = make_activations(num_samples, num_filters, length + filter_length - 1,
                       density, _rng(seed, _ACTIVATIONS))
  x = _sample(w, h, noise, _rng(seed, _NOISE))
  dyn = Dynamics(
      x=x.astype(np.float32), feature_names=_feature_names(num_features),
      ids=[f'planted_{i:05d}' for i in range(num_samples)],
      source=(f'make_planted(K={num_filters}, Tw={filter_length}, '
              f'noise={noise}, density={density}, seed={seed})'))
  return dyn, w, h


@dataclasses.dataclass(frozen=True)
class PlantedAnomalies:
  """A test set with planted anomalies (the anomaly-detection study, B7).

  Attributes:
    dynamics: all samples, in a random order; ids say `normal_`,
      `foreign_filters_` or `shuffled_rows_`.
    labels: int8 [n]: NORMAL (0), FOREIGN_FILTERS (1) or SHUFFLED_ROWS (2);
      `labels > 0` marks the anomalies.
    w_KxDxTw: the normal filters (same as `make_planted(seed=seed)`'s).
    foreign_w_KxDxTw: the filters the FOREIGN_FILTERS samples come from.
  """
  dynamics: Dynamics
  labels: np.ndarray
  w_KxDxTw: np.ndarray
  foreign_w_KxDxTw: np.ndarray

  @property
  def is_anomaly(self) -> np.ndarray:
    return self.labels > 0


def _foreign_filters(w, rng, max_cosine, tries=200):
  """Filters whose cosine similarity to every normal filter is <= max_cosine.

  Similarity is taken over all relative time shifts of the two filters (a
  shifted copy of a normal filter is not foreign). Filters are drawn one at a
  time; after `tries` rejections the least similar candidate is kept.
  """
  k, d, tw = w.shape
  out = []
  for _ in range(k):
    best, best_sim = None, np.inf
    for _ in range(tries):
      cand = make_filters(1, d, tw, rng)[0]
      sim = max(_max_shift_cosine(cand, wk) for wk in w)
      if sim < best_sim:
        best, best_sim = cand, sim
      if sim <= max_cosine:
        break
    out.append(best)
  return np.stack(out)


def _max_shift_cosine(a_DxTw, b_DxTw):
  """max over shifts of <a, shift(b)> for unit-norm non-negative filters."""
  tw = a_DxTw.shape[1]
  padded = np.pad(b_DxTw, ((0, 0), (tw - 1, tw - 1)))
  windows = np.lib.stride_tricks.sliding_window_view(padded, tw, axis=1)
  return float(np.einsum('dt,dst->s', a_DxTw, windows).max())


def _shuffle_rows(x_DxT, rng, candidates=10):
  """x with its rows permuted: of `candidates` random non-identity
  permutations, the one that changes x most (swapping two empty rows would
  leave the sample normal)."""
  d = x_DxT.shape[0]
  best, best_change = x_DxT, -1.0
  for _ in range(candidates):
    perm = rng.permutation(d)
    if np.all(perm == np.arange(d)):
      continue
    change = float(np.linalg.norm(x_DxT[perm] - x_DxT))
    if change > best_change:
      best, best_change = x_DxT[perm], change
  return best if best_change >= 0 else np.roll(x_DxT, 1, axis=0)


def make_planted_anomalies(num_normal: int, num_foreign: int,
                           num_shuffled: int, *, num_features: int = 7,
                           length: int = 60, num_filters: int = 5,
                           filter_length: int = 7, noise: float = 0.05,
                           density: float = 0.02, seed: int = 0,
                           max_cosine: float = 0.5) -> PlantedAnomalies:
  """Normal samples plus two kinds of planted anomalies (equations.md B7).

  * normal: fresh samples from the filters of `make_planted(seed=seed)`.
  * foreign filters: samples of the same generative model but from K other
    filters, each with shift-invariant cosine similarity <= `max_cosine` to
    every normal filter (best of 200 draws if none qualifies).
  * shuffled rows: normal samples whose D feature rows are permuted (per
    sample, of 10 random non-identity permutations the one that changes the
    sample most): the right shapes at the wrong features.

  Args:
    num_normal, num_foreign, num_shuffled: counts of each kind (>= 0, sum > 0).
    num_features, length, num_filters, filter_length, noise, density, seed:
      as in `make_planted`.
    max_cosine: similarity bound for the foreign filters.

  Returns:
    A `PlantedAnomalies` with the samples in random order.
  """
  counts = (num_normal, num_foreign, num_shuffled)
  if any(int(c) != c or c < 0 for c in counts) or sum(counts) == 0:
    raise ConfigError(f'sample counts must be integers >= 0 with a positive '
                      f'sum, got {counts}')
  _check_args(sum(counts), num_features, length, num_filters, filter_length,
              noise, density)
  if num_features < 2 and num_shuffled:
    raise ConfigError('shuffled-row anomalies need num_features >= 2')
  size = length + filter_length - 1
  w = make_filters(num_filters, num_features, filter_length,
                   _rng(seed, _FILTERS))
  foreign_w = _foreign_filters(w, _rng(seed, _FOREIGN_W), max_cosine)

  def draw(n, filters, h_stream, noise_stream):
    h = make_activations(n, num_filters, size, density, _rng(seed, h_stream))
    return _sample(filters, h, noise, _rng(seed, noise_stream))

  x_normal = draw(num_normal, w, _NORMAL_H, _NORMAL_NOISE)
  x_foreign = draw(num_foreign, foreign_w, _FOREIGN_H, _FOREIGN_NOISE)
  x_shuffled = draw(num_shuffled, w, _SHUFFLE_H, _SHUFFLE_NOISE)
  perm_rng = _rng(seed, _SHUFFLE_PERM)
  for i in range(num_shuffled):
    x_shuffled[i] = _shuffle_rows(x_shuffled[i], perm_rng)
  x = np.concatenate([x_normal, x_foreign, x_shuffled])
  labels = np.repeat(np.array([NORMAL, FOREIGN_FILTERS, SHUFFLED_ROWS],
                              dtype=np.int8), counts)
  ids = [f'{LABEL_NAMES[lab]}_{i:05d}'
         for lab, c in zip(range(3), counts) for i in range(c)]
  order = _rng(seed, _ORDER).permutation(len(labels))
  dyn = Dynamics(
      x=x[order].astype(np.float32), feature_names=_feature_names(num_features),
      ids=[ids[i] for i in order],
      source=(f'make_planted_anomalies(normal={num_normal}, '
              f'foreign={num_foreign}, shuffled={num_shuffled}, '
              f'K={num_filters}, Tw={filter_length}, noise={noise}, '
              f'density={density}, seed={seed})'))
  return PlantedAnomalies(dynamics=dyn, labels=labels[order], w_KxDxTw=w,
                          foreign_w_KxDxTw=foreign_w)
