"""Log-probabilities of CBM and RCBM (equations.md B3, B6; paper Eqs. 3, 12).

Per-sample densities, as the paper states them (its Figs. 3-4 fit the
per-sample error `e = ||X - Xhat||_F` with a half-normal of scale sigma and
the per-sample activation `a = sum_k ||h_k||_1` with an exponential of mean
beta):

  `log P(X | h) = log(sqrt(2/pi) / sigma) - e^2 / (2 sigma^2)`,
  `log P(h)     = -log(beta) - a / beta`.

RCBM's joint (Eq. 12): `log P = sum_l log P(X_l | h_l) + log P(h_L)`, with
h inferred by the h-step on the learned filters (`rcbm.infer`). Held-out
perplexity is `exp(-(1/n) sum_i log P(X_i))`; the anomaly score of a sample
is `-log P`. Values are in the model's units (after its input `scale`).

Two readings of Eq. 1's noise, `X = sum_k W_k (x) h_k + E`, score any model
with a reconstruction `Xhat` of each sample (RCBM, SC, cAE, SSM's smoothed
mean) in one family, so that models compare like with like:

* per sample (equations.md B3, the paper's Figs. 3-4): `e = ||X - Xhat||_F ~
  HalfNormal(sigma)`, `log p = log(sqrt(2/pi) / sigma) - e^2 / (2 sigma^2)`
  (`log_p_x_given_h`), one density per sample;
* per entry (the Gaussian reading): `E[d, t] ~ N(0, s^2)` independently,
  `s^2 = sigma^2 / (D T)` (the MLE of s^2 from the same residuals),
  `log p = -(D T / 2) log(2 pi s^2) - e^2 / (2 s^2)` (`log_p_entries`), a
  density over the `D T` numbers of the sample, the kind SSM's exact
  marginal is.

`residual_nll` gives both, with sigma fitted on the training residuals.
Per entry (divided by D T) and per sample they differ by the constant
`log(D T / 4) / 2` (both are `-log sigma - e^2 / (2 sigma^2)` plus a
constant), so they rank models alike and give the same gaps; the readings
differ where the total matters, e.g. BIC (`2 log L - p log n`, where the
per-entry log L is D T times larger against the same penalty).
"""

from __future__ import annotations

import math

import numpy as np

from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import select_k

_LOG_SQRT_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)


def log_p_x_given_h(sq_err: np.ndarray, sigma: float) -> np.ndarray:
  """Half-normal log density of the per-sample error (Eq. 3), per sample."""
  sq_err = np.asarray(sq_err, np.float64)
  return _LOG_SQRT_2_OVER_PI - math.log(sigma) - sq_err / (2.0 * sigma ** 2)


def log_p_entries(sq_err: np.ndarray, sigma: float, num_entries: int
                  ) -> np.ndarray:
  """Per-entry Gaussian log density of the residual, summed over the
  `num_entries = D T` entries of each sample (module docstring)."""
  s2 = sigma ** 2 / num_entries
  return (-0.5 * num_entries * math.log(2.0 * math.pi * s2)
          - np.asarray(sq_err, np.float64) / (2.0 * s2))


def residual_nll(sq_err_test: np.ndarray, sigma_train: float,
                 num_entries: int) -> dict[str, float]:
  """Held-out `-mean log p` of the residuals in both readings.

  Args:
    sq_err_test: `||X_i - Xhat_i||^2` of held-out samples [n].
    sigma_train: `sqrt(mean e^2)` over the training samples (the MLE).
    num_entries: D T.

  Returns:
    `per_sample` (nats per sample, half-normal) and `per_entry` (nats per
    entry of X, Gaussian).
  """
  if not sigma_train > 0:
    raise ValueError(f'sigma_train must be > 0, got {sigma_train}')
  return {
      'per_sample': float(-np.mean(log_p_x_given_h(sq_err_test, sigma_train))),
      'per_entry': float(-np.mean(log_p_entries(sq_err_test, sigma_train,
                                                num_entries)) / num_entries)}


def log_p_h(l1: np.ndarray, beta: float) -> np.ndarray:
  """Exponential log density of the per-sample activation (Eq. 3)."""
  return -math.log(beta) - np.asarray(l1, np.float64) / beta


def cbm_log_joint(sq_err: np.ndarray, l1: np.ndarray, sigma: float,
                  beta: float) -> np.ndarray:
  """`log P(X, h)` of one CBM level, per sample."""
  return log_p_x_given_h(sq_err, sigma) + log_p_h(l1, beta)


def joint_from_activations(model: rcbm_lib.RCBM,
                           acts: list[rcbm_lib.LevelActivations]
                           ) -> np.ndarray:
  """Eq. 12 per sample from `rcbm.infer`'s output (all levels)."""
  if len(acts) != model.num_levels:
    raise ValueError(f'need activations of all {model.num_levels} levels, '
                     f'got {len(acts)}')
  total = log_p_h(acts[-1].l1, model.levels[-1].beta)
  for level, act in zip(model.levels, acts):
    total = total + log_p_x_given_h(act.sq_err, level.sigma)
  return total


def log_prob(model: rcbm_lib.RCBM, x_NxDxT: np.ndarray, source: str = ''
             ) -> np.ndarray:
  """`log P(X_i)` of Eq. 12 for each sample [n] (h inferred, all levels)."""
  return joint_from_activations(model, rcbm_lib.infer(model, x_NxDxT,
                                                      source=source))


def perplexity_from_log_prob(log_p: np.ndarray) -> float:
  """`exp(-mean log P)` (inf on overflow)."""
  with np.errstate(over='ignore'):
    return float(np.exp(-np.mean(np.asarray(log_p, np.float64))))


def perplexity(model: rcbm_lib.RCBM, x_NxDxT: np.ndarray, source: str = ''
               ) -> float:
  """Perplexity `exp(-(1/n) sum_i log P(X_i))` of samples under the model."""
  return perplexity_from_log_prob(log_prob(model, x_NxDxT, source))


def anomaly_scores(model: rcbm_lib.RCBM, x_NxDxT: np.ndarray,
                   source: str = '') -> np.ndarray:
  """`-log P(X_i)` per sample: higher is more anomalous."""
  return -log_prob(model, x_NxDxT, source)


def level_bic(sq_err: np.ndarray, l1: np.ndarray, sigma: float, beta: float,
              num_filters: int, num_features: int, filter_length: int
              ) -> float:
  """BIC of one CBM level: `2 sum_i log P(X_i, h_i) - p log n` (equations.md B5)."""
  log_l = float(np.sum(cbm_log_joint(sq_err, l1, sigma, beta)))
  p = select_k.num_params(num_filters, num_features, filter_length)
  return select_k.bic(log_l, p, len(np.asarray(sq_err)))
