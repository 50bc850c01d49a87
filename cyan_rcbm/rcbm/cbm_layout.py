"""Data side of the CBM solver: its sample layout and filter initialisation.

The solver (`cbm_step`) stores n samples time-major in C chunks of B
samples, `[C, B, T, Dp]`, features zero-padded to Dp (`padded_features`)
and the last chunk zero-padded with empty samples (they never change the
fit: their activations stay 0). A chunk is what one h-step solves at once
(`lax.map` over C); on a device mesh, axis B is split over the devices
(`cyan_rcbm.common.sharding`), so that every device works on B / devices
samples of every chunk.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from cyan_rcbm.common import sharding
from cyan_rcbm.rcbm import ops

Array = jax.Array
INITS = ('patches', 'gaussian')
SAMPLE_AXIS = 1  # the axis of [C, B, ...] split over a device mesh.


def padded_features(num_features: int, form: str) -> int:
  """Feature count used inside the solver (multiples of 8 suit `'conv'`)."""
  forms = (ops.resolve_form(form, 'conv'), ops.resolve_form(form, 'deconv'))
  if 'conv' in forms:
    return -(-num_features // 8) * 8
  return num_features


def batch_layout(num_samples: int, batch_size: int, pad: bool = False,
                 multiple: int = 1) -> tuple[int, int]:
  """(number of chunks C, chunk size B) covering `num_samples`.

  B is `batch_size` (all samples when 0), capped at `num_samples` unless
  `pad` (then a small set is zero-padded up to one full batch), and rounded
  up to a multiple of `multiple` (the device count of a mesh).
  """
  if batch_size <= 0:
    b = num_samples
  else:
    b = batch_size if pad else min(batch_size, num_samples)
  b = -(-b // multiple) * multiple
  return -(-num_samples // b), b


def to_solver_layout(x_NxDxT: np.ndarray | Array, batch_size: int,
                     form: str, pad: bool = False,
                     mesh: Mesh | None = None) -> Array:
  """[N, D, T] -> time-major, feature-padded chunks [C, B, T, Dp].

  Numpy work and one device transfer (no compilation per shape); with a
  mesh, B is a multiple of the device count and split over the devices.
  """
  x = np.asarray(x_NxDxT)
  n, d, _ = x.shape
  c, b = batch_layout(n, batch_size, pad, sharding.num_devices(mesh))
  dp = padded_features(d, form)
  x = np.pad(np.swapaxes(x, 1, 2), ((0, c * b - n), (0, 0), (0, dp - d)))
  x = x.reshape((c, b) + x.shape[1:])
  if mesh is None:
    return jnp.asarray(x)
  return sharding.shard(x, mesh, SAMPLE_AXIS)


def from_solver_layout(a_CxBxLxF: Array, num_samples: int, num_rows: int
                       ) -> np.ndarray:
  """Inverse of `to_solver_layout` for h or xhat: -> [N, num_rows, L]."""
  a = sharding.to_host(a_CxBxLxF)
  a = a.reshape((-1,) + a.shape[2:])[:num_samples]
  return np.swapaxes(a[..., :num_rows], 1, 2)


def per_sample(a_CxB: Array, num_samples: int) -> np.ndarray:
  """A per-sample quantity [C, B] of the solver as numpy [n]."""
  return sharding.to_host(a_CxB).ravel()[:num_samples]


def init_filters(x_NxDxT: np.ndarray, num_filters: int, filter_length: int,
                 seed: int, method: str = 'gaussian') -> np.ndarray:
  """Random unit-norm filters [K, D, Tw] ("random initialization", Alg. 1).

  'patches': K windows of the data, drawn k-means++-style (probability
  proportional to energy times the squared cosine distance to the windows
  already drawn: sparse data gives non-empty and diverse filters), plus 1%
  noise;
  'gaussian': i.i.d. normal entries. Both are projected to `||W_k||_F = 1`.
  """
  if method not in INITS:
    raise ValueError(f'init must be one of {INITS}, got {method!r}')
  x = np.asarray(x_NxDxT, np.float64)
  n, d, t = x.shape
  rng = np.random.default_rng([seed, 12345])
  w = rng.standard_normal((num_filters, d, filter_length))
  if method == 'patches' and t >= filter_length:
    sub = x[rng.choice(n, size=min(n, 2000), replace=False)]
    cum = np.cumsum(np.pad(np.square(sub).sum(1), ((0, 0), (1, 0))), axis=1)
    energy = (cum[:, filter_length:] - cum[:, :-filter_length]).ravel()
    total = energy.sum()
    if total > 0 and np.count_nonzero(energy) >= num_filters:
      picks = _diverse_windows(sub, energy, num_filters, filter_length, rng)
      i, s = np.unravel_index(picks, (sub.shape[0], t - filter_length + 1))
      patches = np.stack([sub[a, :, b:b + filter_length]
                          for a, b in zip(i, s)])
      scale = np.linalg.norm(patches.reshape(num_filters, -1), axis=1)
      w = patches + 0.01 * scale[:, None, None] * w / math.sqrt(
          d * filter_length)
  norm = np.linalg.norm(w.reshape(num_filters, -1), axis=1)
  return w / np.maximum(norm, 1e-12)[:, None, None]


def _diverse_windows(x_NxDxT, energy, count, length, rng, pool=4000):
  """k-means++-style draw of `count` windows: probability proportional to
  energy times the squared distance (1 - cosine) to the windows drawn so
  far, among `pool` candidates drawn proportionally to energy."""
  num_windows = x_NxDxT.shape[2] - length + 1
  nonzero = np.count_nonzero(energy)
  cand = rng.choice(energy.size, size=min(pool, nonzero), replace=False,
                    p=energy / energy.sum())
  i, s = np.unravel_index(cand, (x_NxDxT.shape[0], num_windows))
  v = np.stack([x_NxDxT[a, :, b:b + length].ravel() for a, b in zip(i, s)])
  v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
  weight = energy[cand].astype(np.float64)
  chosen = [int(rng.choice(len(cand), p=weight / weight.sum()))]
  dist = np.ones(len(cand))
  for _ in range(count - 1):
    dist = np.minimum(dist, np.maximum(1.0 - v @ v[chosen[-1]], 0.0))
    p = weight * dist ** 2
    p[chosen] = 0.0
    if p.sum() <= 0:
      p = weight.copy()
      p[chosen] = 0.0
    chosen.append(int(rng.choice(len(cand), p=p / p.sum())))
  return cand[chosen]
