"""Choosing the number of filters K (equations.md B5; paper Eqs. 10, 11, and
BIC).

The paper's method: train once with a large K, sort the filters by
activation strength `sum_i ||h_ik||_1` (Eq. 10), and read the knee of the
cumulative activation `F(m) = sum_{k<=m} strength_k / sum_k strength_k`
(Eq. 11): the smallest `m*` with `F(m*+1) - F(m*) <= eps`. The naive method
it is compared with: BIC `= 2 log L - p log n`, `p = K D Tw + 2`, over a
range of K (one training per K).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def activation_strength(h_NxKxS: np.ndarray) -> np.ndarray:
  """`sum_i ||h_ik||_1` per filter (Eq. 10): [K]."""
  h = np.asarray(h_NxKxS)
  if h.ndim != 3:
    raise ValueError(f'activations must have shape [n, K, S]; got {h.shape}')
  return np.abs(h).sum(axis=(0, 2))


def strength_order(strength_K: np.ndarray) -> np.ndarray:
  """Indices sorting filters by strength, strongest first (stable)."""
  return np.argsort(-np.asarray(strength_K), kind='stable')


def cumulative_activation(strength_K: np.ndarray) -> np.ndarray:
  """`F(m)` for m = 0..K (Eq. 11) of strengths in any order: [K + 1].

  `F(0) = 0`, `F(K) = 1`; strengths are sorted (descending) first. All-zero
  strengths give `F(m) = 0` for m < K.
  """
  s = np.sort(np.asarray(strength_K, np.float64))[::-1]
  total = s.sum()
  cum = np.concatenate([[0.0], np.cumsum(s)])
  if total <= 0:
    out = np.zeros_like(cum)
    out[-1] = 1.0
    return out
  return cum / total


def knee(cumulative_F: np.ndarray, eps: float) -> int:
  """The smallest `m*` in 1..K with `F(m*+1) - F(m*) <= eps` (K if none).

  Args:
    cumulative_F: `F(0..K)` from `cumulative_activation`.
    eps: saturation threshold, `0 < eps << 1`.
  """
  if not 0 < eps < 1:
    raise ValueError(f'eps must be in (0, 1), got {eps}')
  f = np.asarray(cumulative_F)
  k = f.size - 1
  for m in range(1, k):
    if f[m + 1] - f[m] <= eps:
      return m
  return k


def num_params(num_filters: int, num_features: int, filter_length: int
               ) -> int:
  """`p = K D Tw + 2` (filters plus sigma and beta)."""
  return num_filters * num_features * filter_length + 2


def bic(log_likelihood: float, num_parameters: int, num_samples: int
        ) -> float:
  """`2 log L - p log n` (higher is better, as in the paper's Figs. 9-10)."""
  return 2.0 * float(log_likelihood) - num_parameters * math.log(num_samples)


def bic_curve(ks: Sequence[int], log_likelihood_fn: Callable[[int], float],
              num_features: int, filter_length: int, num_samples: int
              ) -> tuple[np.ndarray, np.ndarray]:
  """BIC for each K in `ks` (one training per K, done by the callback).

  Args:
    ks: the K values.
    log_likelihood_fn: K -> total log-likelihood `sum_i log P(X_i)` of a
      CBM trained with K filters.
    num_features, filter_length, num_samples: D, Tw, n.

  Returns:
    (ks as an int array, BIC values).
  """
  ks = np.asarray(list(ks), dtype=int)
  values = np.array([
      bic(log_likelihood_fn(int(k)),
          num_params(int(k), num_features, filter_length), num_samples)
      for k in ks])
  return ks, values
