"""The RMTPP-form time law of CYAN-RNN (paper Eq. 2, equations.md A4).

For the gap `d = t - t_k >= 0` after event k the intensity is
`lambda(d) = exp(w d + b)` with a scalar `w > 0` and a per-event `b`
(`b_k = W^(t) T_k + U^(t) h_k + Z^(t) x_k + b`, computed by the model). With
`a = e^b / w` the law has, in closed form,

* survival   `S(d) = exp(-a (e^{w d} - 1))`,
* log-density `log f(d) = b + w d - a (e^{w d} - 1)`,
* mean        `E[d] = (1/w) e^a E_1(a)` (`E_1`: exponential integral),
* inverse CDF `d = log1p(-log(1 - q) / a) / w`.

Every function is elementwise over broadcastable arrays, pure and jittable,
and stable over the whole range the tests cover (`b` in [-20, 20], `w` in
[1e-6, 1e3]): `expm1`/`log1p` keep the `w -> 0` limit (an exponential law of
rate `e^b`), and `e^a E_1(a)` is computed without forming `e^a` or `E_1(a)`
separately (a series for `a <= 2`, a continued fraction for `a > 2`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Number of terms of the power series of E_1 (a <= 1) and depth of the
# continued fraction of e^a E_1(a) (a > 1): enough for float64 precision
# (checked against scipy in tests/test_tpp.py).
_SERIES_TERMS = 25
_FRACTION_DEPTH = 40
_SWITCH = 2.0  # series below, continued fraction above


def _exp_e1_series(a: jax.Array) -> jax.Array:
  """`e^a E_1(a)` for `0 < a <= 2` from `E_1(a) = -gamma - ln a - sum_n (-a)^n / (n n!)`."""
  # Horner form of sum_{n>=1} (-a)^n / (n n!) = (-a) * (c_1 + (-a)(c_2 + ...)).
  acc = jnp.zeros_like(a)
  for n in range(_SERIES_TERMS, 0, -1):
    acc = 1.0 / (n * float(np.prod(np.arange(1, n + 1, dtype=np.float64)))) + (
        -a) * acc
  e1 = -np.euler_gamma - jnp.log(a) - (-a) * acc
  return jnp.exp(a) * e1


def _exp_e1_fraction(a: jax.Array) -> jax.Array:
  """`e^a E_1(a)` for `a >= 2`: `1/(a+1- 1/(a+3- 4/(a+5- 9/(a+7- ...))))`."""
  tail = jnp.zeros_like(a)
  for n in range(_FRACTION_DEPTH, 0, -1):
    tail = (n * n) / (a + 2 * n + 1 - tail)
  return 1.0 / (a + 1.0 - tail)


def exp_e1(a: jax.Array) -> jax.Array:
  """`e^a E_1(a)` for `a > 0`, stable for tiny and huge `a` (-> 1/a)."""
  a = jnp.asarray(a)
  small = a <= _SWITCH
  a_small = jnp.where(small, a, _SWITCH)  # keep both branches finite (and
  a_large = jnp.where(small, _SWITCH, a)  # their gradients free of NaN).
  return jnp.where(small, _exp_e1_series(a_small), _exp_e1_fraction(a_large))


def _log_expm1(x: jax.Array) -> jax.Array:
  """`log(e^x - 1)` for `x > 0` without overflow."""
  big = x > 20.0
  x_small = jnp.where(big, 1.0, x)
  return jnp.where(big, x + jnp.log1p(-jnp.exp(-x)), jnp.log(jnp.expm1(x_small)))


def log_integral(gap: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
  """`log Lambda(d)`, Lambda(d) = int_0^d lambda = e^b (e^{w d} - 1) / w; -inf at d = 0."""
  gap, b, w = jnp.broadcast_arrays(*map(jnp.asarray, (gap, b, w)))
  positive = gap > 0
  wd = jnp.where(positive, w * gap, 1.0)
  safe_gap = jnp.where(positive, gap, 1.0)
  # log(expm1(wd)/w) = log d + log(expm1(wd)/wd): the second term is ~wd/2 for
  # small wd, so the w -> 0 limit (an exponential law) is exact.
  log_ratio = jnp.where(wd < 1e-3, wd / 2 + wd * wd / 24,
                        _log_expm1(jnp.maximum(wd, 1e-3)) - jnp.log(
                            jnp.maximum(wd, 1e-3)))
  out = b + jnp.log(safe_gap) + log_ratio
  return jnp.where(positive, out, -jnp.inf)


def log_density(gap: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
  """`log f(d) = b + w d - (e^b / w)(e^{w d} - 1)` (paper Eq. 2, equations.md
  A4).

  Args:
    gap: `d >= 0`, time since the current event.
    b: log base intensity, any real.
    w: slope, `> 0`.

  Returns:
    The exact log-density, broadcast over the inputs.
  """
  gap = jnp.asarray(gap)
  return b + w * gap - jnp.exp(log_integral(gap, b, w))


def log_survival(gap: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
  """`log S(d) = -(e^b / w)(e^{w d} - 1)`."""
  return -jnp.exp(log_integral(gap, b, w))


def expected_gap(b: jax.Array, w: jax.Array) -> jax.Array:
  """`E[d] = (1/w) e^a E_1(a)`, `a = e^b / w` (equations.md A4), stable for all
  b, w.

  For `a -> inf` (small `w`) this tends to `e^{-b}`, the mean of the
  exponential law; for `a -> 0` (large `w`) to `(-gamma - ln a) / w`.
  """
  b, w = jnp.asarray(b), jnp.asarray(w)
  log_a = b - jnp.log(w)
  a = jnp.exp(log_a)
  # Large a: e^a E_1(a) = (1/a) * c(a) with c -> 1, so E[d] = e^{-b} c(a)
  # without dividing a huge a by a tiny w.
  large = a > 1e6
  a_mid = jnp.where(large, 1.0, a)
  inv_a = jnp.exp(-jnp.where(large, log_a, 0.0))
  asymptotic = jnp.exp(-b) * (1 - inv_a + 2 * inv_a**2 - 6 * inv_a**3)
  return jnp.where(large, asymptotic, exp_e1(a_mid) / w)


def sample_gap(key: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
  """Draws `d ~ f(.; b, w)` by inverse transform: `d = log1p(E / a) / w`, `E ~ Exp(1)`."""
  b, w = jnp.broadcast_arrays(jnp.asarray(b), jnp.asarray(w))
  e = jax.random.exponential(key, b.shape, dtype=b.dtype)
  # E / a = E w e^{-b}; log1p(z)/w with z = E w e^{-b} -> E e^{-b} as w -> 0.
  z = e * w * jnp.exp(-b)
  return jnp.where(z < 1e-6, e * jnp.exp(-b) * (1 - z / 2), jnp.log1p(z) / w)
