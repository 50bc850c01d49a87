"""Poisson and Hawkes processes for the next activation time (paper §4.1;
equations.md A5).

Both model only the time of the next event given the history of its cascade
(they do not rank users). A cascade's first event is taken as given; the
likelihood is that of every later event, `prod_k f(t_{k+1} - t_k | H_k)`,
the same conditioning the neural models' loss (Eq. 8) uses (no survival term
after a cascade's last event: the end of observation is unknown for real
data).

* Poisson process: constant intensity `lambda`; its MLE is the number of
  next events over the total time they took, and the predicted gap is
  `1 / lambda` (the mean training gap).
* Hawkes process (Eq. 9): `lambda(t) = lambda_0 + alpha sum_{i<=k}
  exp(-(t - t_i) / sigma)` for `t` after event k, `sigma = 1` (in the data's
  time unit, hours for the real sets). With the excitation `R_k = sum_{i<=k}
  exp(-(t_k - t_i) / sigma)` (`R_k = 1 + exp(-gap_k / sigma) R_{k-1}`, a
  linear recurrence evaluated with `jax.lax.associative_scan`) the gap `d`
  after event k has intensity `lambda_0 + alpha R_k e^{-d/sigma}`, the exact
  compensator `lambda_0 d + alpha sigma R_k (1 - e^{-d/sigma})`, and the
  survival `S(d) = exp(-compensator)`. `lambda_0` and `alpha` maximise the
  likelihood of all training cascades (log-parametrised, damped Newton on one
  jitted loss over a padded [M, N] array). The predicted gap is
  `E[d] = int_0^inf S(d) dd`, computed by `hawkes_expected_gap`.

The sum over earlier events runs over positions `i <= k` (the history), so
simultaneous events (equal times, common in the real sets) are well defined.
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

# Gauss-Legendre nodes of `hawkes_expected_gap` (accuracy checked against
# scipy quadrature in tests/test_baselines_point_process.py).
QUADRATURE_NODES = 96
# The quadrature runs over d in [_LOW * s_fast, _HIGH * s_slow] in log d.
_LOW, _HIGH = 1e-7, 50.0


@dataclasses.dataclass(frozen=True)
class PoissonProcess:
  """Homogeneous Poisson process: every gap is exponential with `rate`."""
  rate: float
  num_events: int = 0  # next events it was fitted on
  name = 'poisson'

  @classmethod
  def fit(cls, train: types.CascadeDataset, *,
          max_events: int = 0) -> PoissonProcess:
    """MLE `rate = #gaps / sum(gaps)` over the training cascades."""
    batch = _common.padded(train, max_events)
    d, has_next = _common.next_gaps(batch.gaps, batch.mask)
    count = int(has_next.sum())
    total = float(np.sum(d[has_next], dtype=np.float64))
    if total <= 0:
      raise errors.DataError(
          f'all {count} training gaps are 0: a Poisson rate cannot be fitted '
          '(the events of each cascade must not all share one time).',
          path=train.source or None)
    return cls(rate=count / total, num_events=count)

  def predict(self, batch: batching.Batch):
    """`(None, 1/rate per position, None, {'time_nll_per_event'})`."""
    d, _ = _common.next_gaps(batch.gaps, batch.mask)
    gap = np.full(d.shape, 1.0 / self.rate, np.float32)
    nll = (self.rate * d - np.log(self.rate)).astype(np.float32)
    return None, gap, None, {'time_nll_per_event': nll}


def _linear_recurrence(a_BxN: jax.Array, b_BxN: jax.Array) -> jax.Array:
  """`x_k = a_k x_{k-1} + b_k` along axis 1 with `x_0 = b_0` (a_0 ignored)."""
  a_BxN = a_BxN.at[:, 0].set(0.0)

  def combine(left, right):
    a_l, b_l = left
    a_r, b_r = right
    return a_l * a_r, a_r * b_l + b_r

  _, x = jax.lax.associative_scan(combine, (a_BxN, b_BxN), axis=1)
  return x


def hawkes_excitation(gaps_BxN: jax.Array, sigma: float = 1.0) -> jax.Array:
  """`R_k = sum_{i<=k} exp(-(t_k - t_i) / sigma)` of every position (>= 1)."""
  gaps_BxN = jnp.asarray(gaps_BxN)
  return _linear_recurrence(jnp.exp(-gaps_BxN / sigma),
                            jnp.ones_like(gaps_BxN))


def hawkes_log_likelihood(base_rate: jax.Array, alpha: jax.Array,
                          gaps_BxN: jax.Array, mask_BxN: jax.Array,
                          sigma: float = 1.0) -> jax.Array:
  """Log-density of each next event under the Hawkes process (Eq. 9).

  Position k holds `log f(t_{k+1} - t_k | H_k) = log(lambda_0 + alpha R_k
  e^{-d/sigma}) - lambda_0 d - alpha sigma R_k (1 - e^{-d/sigma})` and 0
  where event k+1 does not exist.

  Args:
    base_rate: `lambda_0 > 0`.
    alpha: `alpha >= 0`.
    gaps_BxN: `t_k - t_{k-1}` (position 0 ignored), as in `Batch.gaps`.
    mask_BxN: real events (a prefix of each row).
    sigma: kernel time scale.
  """
  gaps_BxN = jnp.asarray(gaps_BxN)
  mask_BxN = jnp.asarray(mask_BxN, bool)
  excitation = hawkes_excitation(gaps_BxN, sigma)
  d = jnp.concatenate([gaps_BxN[:, 1:], jnp.zeros_like(gaps_BxN[:, :1])], 1)
  has_next = jnp.concatenate([mask_BxN[:, 1:],
                              jnp.zeros_like(mask_BxN[:, :1])], 1)
  decay = jnp.exp(-d / sigma)
  intensity = base_rate + alpha * excitation * decay
  compensator = base_rate * d - alpha * sigma * excitation * jnp.expm1(
      -d / sigma)
  ll = jnp.log(jnp.where(has_next, intensity, 1.0)) - compensator
  return jnp.where(has_next, ll, 0.0)


def hawkes_expected_gap(base_rate: jax.Array, alpha: jax.Array,
                        excitation: jax.Array, sigma: float = 1.0,
                        num_nodes: int = QUADRATURE_NODES) -> jax.Array:
  """`E[d | H_k] = int_0^inf S(d) dd` for every position, by quadrature.

  `S(d) = exp(-lambda_0 d - A (1 - e^{-d/sigma}))` with `A = alpha sigma R_k`
  tends to `c e^{-lambda_0 d}`, `c = e^{-A}` (the chance that the excitation
  alone never fires); that part integrates to `c / lambda_0` exactly. The
  rest, `e^{-lambda_0 d} e^{-A(1-y)} (1 - e^{-A y})` with `y = e^{-d/sigma}`,
  decays at least as fast as `e^{-(lambda_0 + 1/sigma) d}` and starts falling
  at rate `~lambda_0 + alpha R_k`; it is integrated with a fixed
  Gauss-Legendre rule in `log d` over `[1e-7 / (lambda_0 + alpha R_k +
  1/sigma), 50 / (lambda_0 + 1/sigma)]` (plus the exact-to-first-order
  sliver below), vectorised over all positions at once.

  Args:
    base_rate: `lambda_0 > 0`.
    alpha: `alpha >= 0`.
    excitation: `R_k >= 0` (any shape), from `hawkes_excitation`.
    sigma: kernel time scale.
    num_nodes: Gauss-Legendre nodes.

  Returns:
    the expected gap, shaped like `excitation`.
  """
  excitation = jnp.asarray(excitation)
  dtype = jnp.result_type(excitation.dtype, jnp.float32)
  x, w = np.polynomial.legendre.leggauss(num_nodes)
  x, w = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
  lam = jnp.asarray(base_rate, dtype)
  big_a = alpha * sigma * excitation[..., None]               # [..., 1]
  c = jnp.exp(-big_a)
  log_lo = jnp.log(_LOW / (lam + alpha * excitation[..., None] + 1.0 / sigma))
  log_hi = jnp.log(_HIGH / (lam + 1.0 / sigma))
  half = (log_hi - log_lo) / 2
  d = jnp.exp(log_lo + half * (x + 1.0))                       # [..., Q]
  y = jnp.exp(-d / sigma)
  rest = (jnp.exp(-lam * d + big_a * jnp.expm1(-d / sigma))   # e^{-A(1-y)}
          * -jnp.expm1(-big_a * y))
  integral = half[..., 0] * jnp.sum(w * rest * d, axis=-1)
  sliver = jnp.exp(log_lo[..., 0]) * (1.0 - c[..., 0])
  return c[..., 0] / lam + integral + sliver


@functools.partial(jax.jit, static_argnames=('sigma',))
def _hawkes_objective(theta, gaps_BxN, mask_BxN, sigma):
  """Mean negative log-likelihood per next event; `theta = log(lambda_0, alpha)`."""
  ll = hawkes_log_likelihood(jnp.exp(theta[0]), jnp.exp(theta[1]), gaps_BxN,
                             mask_BxN, sigma)
  count = jnp.maximum(jnp.sum(mask_BxN[:, 1:]), 1)
  return -jnp.sum(ll) / count


@functools.partial(jax.jit, static_argnames=('sigma',))
def _hawkes_newton_terms(theta, gaps_BxN, mask_BxN, sigma):
  value, grad = jax.value_and_grad(_hawkes_objective)(theta, gaps_BxN,
                                                      mask_BxN, sigma)
  hess = jax.hessian(_hawkes_objective)(theta, gaps_BxN, mask_BxN, sigma)
  return value, grad, hess


def _newton_minimize(theta, args, sigma, max_steps, tol):
  """Damped Newton with backtracking on the 2-parameter objective.

  Returns `(theta, value, steps, converged)`.
  """
  value, grad, hess = map(np.asarray, _hawkes_newton_terms(theta, *args,
                                                           sigma))
  for step in range(1, max_steps + 1):
    try:
      eig = np.linalg.eigvalsh(hess)
      direction = (-np.linalg.solve(hess, grad) if eig.min() > 1e-10
                   else -grad / max(np.abs(eig).max(), 1.0))
    except np.linalg.LinAlgError:
      direction = -grad
    # Keep steps in log space moderate (a factor e^5 per step at most).
    direction *= min(1.0, 5.0 / max(np.abs(direction).max(), 1e-30))
    slope = float(grad @ direction)
    t = 1.0
    for _ in range(40):
      candidate = theta + t * direction
      new_value = float(_hawkes_objective(candidate, *args, sigma))
      if np.isfinite(new_value) and new_value <= value + 1e-4 * t * slope:
        break
      t /= 2
    else:
      return theta, value, step, bool(np.abs(grad).max() < tol)
    decrease = value - new_value
    theta = candidate
    value, grad, hess = map(np.asarray, _hawkes_newton_terms(theta, *args,
                                                             sigma))
    if np.abs(grad).max() < tol or decrease < 1e-12 * max(abs(value), 1.0):
      return theta, value, step, True
  return theta, value, max_steps, bool(np.abs(grad).max() < tol)


@functools.partial(jax.jit, static_argnames=('sigma',))
def _hawkes_predict(base_rate, alpha, gaps_BxN, mask_BxN, sigma):
  excitation = hawkes_excitation(gaps_BxN, sigma)
  gap = hawkes_expected_gap(base_rate, alpha, excitation, sigma)
  nll = -hawkes_log_likelihood(base_rate, alpha, gaps_BxN, mask_BxN, sigma)
  return gap, nll


@dataclasses.dataclass(frozen=True)
class HawkesProcess:
  """Hawkes process with an exponential kernel of scale `sigma` (Eq. 9)."""
  base_rate: float
  alpha: float
  sigma: float = 1.0
  train_nll: float = float('nan')  # mean NLL per training next event
  newton_steps: int = 0
  converged: bool = False
  name = 'hawkes'

  @classmethod
  def fit(cls, train: types.CascadeDataset, *, sigma: float = 1.0,
          max_events: int = 0, max_steps: int = 60,
          tol: float = 1e-6) -> HawkesProcess:
    """Maximum likelihood `lambda_0`, `alpha` over the training cascades.

    Starts from the Poisson MLE split evenly between `lambda_0` and the
    excitation; stops when the gradient (w.r.t. the logs) is below `tol` or
    the loss stops decreasing.
    """
    if not sigma > 0:
      raise errors.ConfigError(f'Hawkes sigma must be > 0; got {sigma!r}.')
    batch = _common.padded(train, max_events)
    poisson = PoissonProcess.fit(train, max_events=max_events)
    theta0 = np.log([poisson.rate / 2, 0.5 / sigma]).astype(np.float32)
    args = (jnp.asarray(batch.gaps), jnp.asarray(batch.mask))
    theta, value, steps, converged = _newton_minimize(
        jnp.asarray(theta0), args, float(sigma), max_steps, tol)
    theta = np.asarray(theta, np.float64)
    return cls(base_rate=float(np.exp(theta[0])), alpha=float(np.exp(theta[1])),
               sigma=float(sigma), train_nll=float(value), newton_steps=steps,
               converged=converged)

  def predict(self, batch: batching.Batch):
    """`(None, E[d | H_k], None, {'time_nll_per_event'})` per position."""
    gap, nll = _hawkes_predict(jnp.float32(self.base_rate),
                               jnp.float32(self.alpha), batch.gaps, batch.mask,
                               self.sigma)
    return None, gap, None, {'time_nll_per_event': nll}
