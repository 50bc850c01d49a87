"""Convolutional autoencoder (cAE) with conventional 2-D convolutions
(equations.md B7).

The paper's deep-learning baseline (ref. [10], Kavukcuoglu et al. 2010):
a sample `X in R^{D x T}` is a one-channel D x T "image" and every level
is a convolutional autoencoder with a sparsity penalty on its codes,

  `z = relu(Enc(x))`,  `xhat = Dec(z)`,
  `loss = mean_i [ 1/2 ||x_i - xhat_i||_F^2 + lam ||z_i||_1 ]`,

where Enc and Dec are conventional 2-D convolutions ('SAME' padding) with
kernels spanning all D rows by Tw steps, so each output row mixes every
input row (equations.md B2: `O(D^2 Tw T)` per map, against RCBM's `O(D Tw T)`).
Each decoder map (the D x Tw "filter" a code map writes with) is projected
to unit Frobenius norm after every step, as RCBM's `||W_k||_F <= 1`, so the
penalty cannot be dodged by shrinking codes and growing filters.

Levels are trained greedily, as in the paper's cAE and RCBM: level 2 sees
level 1's codes max-pooled over time by `pool` (the feature rows are kept),
and "the number of activation vectors becomes K^2 from the second level"
(paper, "RCBM features"): each of the K level-1 maps gets its own K filters
(a grouped convolution, K -> K^2 maps), the connection table of ref. [10].

Likelihood, stated to mirror RCBM's Eq. 12 (equations.md B3, B6): per level l
the per-sample reconstruction error `e_l = ||X_l - Dec_l(z_l)||_F` has a
half-normal density with scale `sigma_l` and the top level's code mass
`a_L = ||z_L||_1` an exponential density with mean `beta_L` (MLE on the
training data, codes by the encoder, no inference),

  `log P(X) = sum_l log HalfNormal(e_l; sigma_l) + log Exp(a_L; beta_L)`.

It is not a normalised density of X (neither is RCBM's: both are densities
of the summary statistics); see `docs/rcbm_results/results.md`.

Training: Adam (optax) on shuffled mini-batches, one jitted `lax.scan` per
epoch, until the epoch loss changes by less than `tol` (relative), or
`max_epochs`, or the wall-clock budget `time_budget_s` is spent (recorded:
the paper's cAE "scales up to 500 samples").
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import likelihood

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CAEConfig:
  """Settings of the cAE (hashable).

  Attributes:
    num_maps: K, maps of level 1; level l has K^l maps.
    num_levels: L.
    filter_length: Tw, the kernel width in time (the height is D).
    pool: max-pooling factor over time between levels.
    lam: weight of the code l1 penalty (RCBM's `sigma^2 / beta`).
    learning_rate: Adam step size.
    batch_size: samples per step (the last partial batch of an epoch is
      dropped; n < batch_size uses one batch of n).
    max_epochs: epochs per level, at most.
    min_epochs: epochs before testing `tol`.
    tol: stop a level when its epoch loss changes by less than this, relative.
    time_budget_s: wall-clock seconds for the whole fit (all levels); a level
      that starts after the budget is spent still gets `min_epochs`.
    seed: parameter initialisation and batch order.
  """
  num_maps: int = 10
  num_levels: int = 2
  filter_length: int = 7
  pool: int = 2
  lam: float = 0.3
  learning_rate: float = 3e-3
  batch_size: int = 128
  max_epochs: int = 100
  min_epochs: int = 3
  tol: float = 1e-3
  time_budget_s: float = math.inf
  seed: int = 0

  def __post_init__(self):
    for name in ('num_maps', 'num_levels', 'filter_length', 'pool',
                 'batch_size', 'max_epochs'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
    if not self.lam >= 0:
      raise ValueError(f'lam must be >= 0, got {self.lam}')
    if not self.learning_rate > 0:
      raise ValueError(f'learning_rate must be > 0, got {self.learning_rate}')


def grouped_conv(lhs, rhs, window_strides, padding, *, feature_group_count=1,
                 **unused_kwargs) -> Array:
  """A 'SAME', stride-1 grouped 2-D convolution as a sum of shifted products.

  Equal to `lax.conv_general_dilated(lhs NHWC, rhs HWIO, (1, 1), 'SAME',
  feature_group_count=G)`, but 10-25x faster on CPU for level 2's grouped
  shapes (XLA's CPU grouped convolution and its gradients are very slow for
  a few input channels per group). Passed to `nnx.Conv` as its
  `conv_general_dilated`; the arithmetic is the same `O(D^2 Tw T)` per map.
  """
  if tuple(window_strides) != (1, 1):
    raise ValueError(f'grouped_conv supports stride 1, got {window_strides}')
  kh, kw, cg, o = rhs.shape
  n, h, w, _ = lhs.shape
  g = feature_group_count
  if isinstance(padding, str):
    if padding != 'SAME':
      raise ValueError(f"grouped_conv supports 'SAME' padding, got {padding}")
    padding = [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)]
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  x = x.reshape(x.shape[:3] + (g, cg))
  r = rhs.reshape(kh, kw, cg, g, o // g)
  out = 0
  for i in range(kh):
    for j in range(kw):
      window = x[:, i:i + h, j:j + w]
      if o == g:   # one output per group: an elementwise product and a sum.
        out = out + jnp.sum(window * jnp.swapaxes(r[i, j, :, :, 0], 0, 1),
                            axis=-1)
      else:
        out = out + jnp.einsum('nhwgc,cgo->nhwgo', window, r[i, j])
  return out.reshape(n, h, w, o)


class CAELevel(nnx.Module):
  """One level: `z = relu(Enc(x))`, `xhat = Dec(z)`, NHWC with H = D rows,
  W = T steps, C = maps. `groups` > 1 connects each input map to its own
  `num_maps / groups` code maps."""

  def __init__(self, in_maps: int, num_maps: int, kernel_size: tuple[int, int],
               groups: int, *, rngs: nnx.Rngs):
    self.groups = groups
    conv = dict(conv_general_dilated=grouped_conv) if groups > 1 else {}
    self.encoder = nnx.Conv(in_maps, num_maps, kernel_size, padding='SAME',
                            feature_group_count=groups, rngs=rngs, **conv)
    self.decoder = nnx.Conv(num_maps, in_maps, kernel_size, padding='SAME',
                            feature_group_count=groups, rngs=rngs, **conv)

  def encode(self, x_NxDxTxC: Array) -> Array:
    return nnx.relu(self.encoder(x_NxDxTxC))

  def __call__(self, x_NxDxTxC: Array) -> tuple[Array, Array]:
    z = self.encode(x_NxDxTxC)
    return self.decoder(z), z


def unit_norm_maps(kernel_HxWxJxO: Array, groups: int) -> Array:
  """Projects the decoder filter of every code map to `||.||_F <= 1`.

  A grouped decoder kernel [kh, kw, J, O] (J = maps per group, O = outputs)
  maps code map `g J + j` to the outputs of group g through
  `kernel[:, :, j, g O/G : (g+1) O/G]`; that block is one filter.
  """
  kh, kw, j, o = kernel_HxWxJxO.shape
  k = kernel_HxWxJxO.reshape(kh, kw, j, groups, o // groups)
  norm = jnp.sqrt(jnp.sum(jnp.square(k), axis=(0, 1, 4), keepdims=True))
  k = k * jnp.minimum(1.0, 1.0 / jnp.maximum(norm, jnp.finfo(k.dtype).tiny))
  return k.reshape(kh, kw, j, o)


def _project(params: dict[str, Any], groups: int) -> dict[str, Any]:
  dec = dict(params['decoder'])
  dec['kernel'] = unit_norm_maps(dec['kernel'], groups)
  return {**params, 'decoder': dec}


def _per_sample(a):
  return jnp.sum(a.reshape(a.shape[0], -1), axis=1)


def _loss(params, graphdef, x, lam):
  xhat, z = nnx.merge(graphdef, params)(x)
  sq = _per_sample(jnp.square(x - xhat))
  l1 = _per_sample(z)
  return jnp.mean(0.5 * sq + lam * l1)


@functools.partial(jax.jit, static_argnames=('graphdef', 'tx', 'groups',
                                             'lam'))
def _train_epoch(params, opt_state, batches_BxNxDxTxC, *, graphdef, tx,
                 groups, lam):
  """Adam over the batches of one epoch (a `lax.scan`); mean batch loss."""

  def step(carry, x):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(_loss)(params, graphdef, x, lam)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = _project(optax.apply_updates(params, updates), groups)
    return (params, opt_state), loss

  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state),
                                             batches_BxNxDxTxC)
  return params, opt_state, jnp.mean(losses)


@functools.partial(jax.jit, static_argnames=('graphdef',))
def _apply(params, x, *, graphdef):
  xhat, z = nnx.merge(graphdef, params)(x)
  return z, _per_sample(jnp.square(x - xhat)), _per_sample(z)


@dataclasses.dataclass
class CAEModel:
  """A trained cAE.

  Attributes:
    cfg: its settings.
    graphdefs, params: per level, the NNX graph and parameters (pure dicts).
    groups: per level, the encoder/decoder group count.
    sigma: per level, MLE of the per-sample error scale (half-normal).
    beta: per level, MLE of the mean per-sample code mass (exponential).
    num_features, length: D and T of the training samples.
  """
  cfg: CAEConfig
  graphdefs: list[Any]
  params: list[dict[str, Any]]
  groups: list[int]
  sigma: list[float]
  beta: list[float]
  num_features: int
  length: int

  @property
  def num_params(self) -> int:
    """Weights and biases of every encoder and decoder, plus sigma, beta per
    level."""
    weights = sum(int(np.size(leaf)) for p in self.params
                  for leaf in jax.tree.leaves(p))
    return weights + 2 * len(self.params)

  def level_num_params(self) -> list[int]:
    return [sum(int(np.size(leaf)) for leaf in jax.tree.leaves(p))
            for p in self.params]


@dataclasses.dataclass
class CAEFit:
  """A trained cAE and its trace.

  Attributes:
    model: the `CAEModel`.
    history: per level, per epoch: mean loss and seconds.
    epochs: epochs run per level.
    converged: per level, the loss change fell below `tol`.
    budget_exhausted: the wall-clock budget stopped training.
    seconds: total training time.
  """
  model: CAEModel
  history: list[list[dict[str, float]]]
  epochs: list[int]
  converged: list[bool]
  budget_exhausted: bool
  seconds: float


def max_pool_time(z_NxDxTxC: np.ndarray, factor: int) -> np.ndarray:
  """`max_{s < c} z[:, :, c t + s, :]`, length `ceil(T / c)` (zero padding;
  codes are >= 0)."""
  z = np.asarray(z_NxDxTxC)
  if factor == 1:
    return z
  n, d, t, c = z.shape
  out = -(-t // factor)
  padded = np.zeros((n, d, out * factor, c), z.dtype)
  padded[:, :, :t] = z
  return padded.reshape(n, d, out, factor, c).max(axis=3)


def _apply_chunked(graphdef, params, x, chunk=256):
  """`_apply` over fixed-size chunks (the last one zero-padded), so that one
  compilation serves every sample count."""
  n = x.shape[0]
  size = min(chunk, n)
  pad = -n % size
  xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  zs, sqs, l1s = [], [], []
  for i in range(0, xp.shape[0], size):
    z, sq, l1 = _apply(params, jnp.asarray(xp[i:i + size]), graphdef=graphdef)
    zs.append(np.asarray(z))
    sqs.append(np.asarray(sq))
    l1s.append(np.asarray(l1))
  return (np.concatenate(zs)[:n], np.concatenate(sqs)[:n],
          np.concatenate(l1s)[:n])


@functools.lru_cache(maxsize=None)
def _adam(learning_rate: float) -> optax.GradientTransformation:
  """One optax object per step size (a jit static argument: reusing it
  avoids recompiling the epoch for every fit)."""
  return optax.adam(learning_rate)


def _train_level(x, level, cfg, groups, deadline, rng):
  """Adam on one level until tol / max_epochs / the deadline."""
  graphdef, state = nnx.split(level, nnx.Param)
  params = _project(state.to_pure_dict(), groups)
  tx = _adam(float(cfg.learning_rate))
  opt_state = tx.init(params)
  n = x.shape[0]
  b = min(cfg.batch_size, n)
  num_batches = n // b
  history, converged, prev = [], False, None
  for epoch in range(1, cfg.max_epochs + 1):
    t0 = time.perf_counter()
    order = rng.permutation(n)[:num_batches * b]
    batches = jnp.asarray(x[order].reshape((num_batches, b) + x.shape[1:]))
    params, opt_state, loss = _train_epoch(
        params, opt_state, batches, graphdef=graphdef, tx=tx, groups=groups,
        lam=float(cfg.lam))
    loss = float(loss)
    if not math.isfinite(loss):
      raise FloatingPointError(f'cAE loss is not finite at epoch {epoch}')
    history.append({'epoch': epoch, 'loss': loss,
                    'seconds': time.perf_counter() - t0})
    if (prev is not None and epoch >= cfg.min_epochs
        and abs(prev - loss) <= cfg.tol * max(abs(loss), 1e-30)):
      converged = True
      break
    prev = loss
    if epoch >= cfg.min_epochs and time.perf_counter() > deadline:
      break
  return graphdef, params, history, converged


def _check_x(x_NxDxT):
  dynamics_lib.validate_dynamics(x_NxDxT)
  return np.asarray(x_NxDxT)


def fit_cae(x_NxDxT: np.ndarray, cfg: CAEConfig = CAEConfig()) -> CAEFit:
  """Trains the cAE level by level (module docstring).

  Raises:
    DataError: x is not a non-empty finite [n, D, T] array, or T is shorter
      than the filter length.
    FloatingPointError: the loss became NaN or infinite.
  """
  x_np = _check_x(x_NxDxT)
  n, d, t = x_np.shape
  if t < cfg.filter_length:
    raise DataError(f'samples of length {t} are shorter than the cAE filter '
                    f'length {cfg.filter_length}')
  dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
  start = time.perf_counter()
  deadline = start + cfg.time_budget_s
  rng = np.random.default_rng([cfg.seed, 77])
  x = x_np.astype(dtype)[..., None]
  graphdefs, params, groups_all, sigmas, betas = [], [], [], [], []
  history, epochs, converged = [], [], []
  in_maps = 1
  for number in range(cfg.num_levels):
    groups = 1 if number == 0 else in_maps
    num_maps = in_maps * cfg.num_maps if number else cfg.num_maps
    level = CAELevel(in_maps, num_maps, (d, cfg.filter_length), groups,
                     rngs=nnx.Rngs(cfg.seed * 1000 + number))
    graphdef, p, hist, conv = _train_level(x, level, cfg, groups, deadline,
                                           rng)
    z, sq, l1 = _apply_chunked(graphdef, p, x)
    graphdefs.append(graphdef)
    params.append(p)
    groups_all.append(groups)
    sigmas.append(max(math.sqrt(float(np.mean(sq))), 1e-6))
    betas.append(max(float(np.mean(l1)), 1e-6))
    history.append(hist)
    epochs.append(len(hist))
    converged.append(conv)
    x = max_pool_time(z, cfg.pool)
    in_maps = num_maps
  model = CAEModel(cfg=cfg, graphdefs=graphdefs, params=params,
                   groups=groups_all, sigma=sigmas, beta=betas,
                   num_features=d, length=t)
  elapsed = time.perf_counter() - start
  return CAEFit(model=model, history=history, epochs=epochs,
                converged=converged,
                budget_exhausted=elapsed > cfg.time_budget_s, seconds=elapsed)


def encode(model: CAEModel, x_NxDxT: np.ndarray
           ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Per level: (codes [n, D, T_l, K^l], e_l^2 [n], a_l [n]).

  Raises:
    DataError: x is not finite [n, D, T] with the model's D and T.
  """
  x_np = _check_x(x_NxDxT)
  if x_np.shape[1:] != (model.num_features, model.length):
    raise DataError(f'samples have shape {x_np.shape[1:]} (D, T) but the cAE '
                    f'was trained on {(model.num_features, model.length)}')
  dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
  x = x_np.astype(dtype)[..., None]
  out = []
  for graphdef, p in zip(model.graphdefs, model.params):
    z, sq, l1 = _apply_chunked(graphdef, p, x)
    out.append((z, sq, l1))
    x = max_pool_time(z, model.cfg.pool)
  return out


def reconstruct(model: CAEModel, x_NxDxT: np.ndarray) -> np.ndarray:
  """Level-1 reconstruction `Dec_1(Enc_1(X))` [n, D, T]."""
  x = _check_x(x_NxDxT)
  dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
  level = nnx.merge(model.graphdefs[0], model.params[0])
  xhat, _ = level(jnp.asarray(x.astype(dtype)[..., None]))
  return np.asarray(xhat)[..., 0]


def log_prob(model: CAEModel, x_NxDxT: np.ndarray) -> np.ndarray:
  """`log P(X_i)` per sample (module docstring; mirrors Eq. 12)."""
  levels = encode(model, x_NxDxT)
  total = likelihood.log_p_h(levels[-1][2], model.beta[-1])
  for (_, sq, _), sigma in zip(levels, model.sigma):
    total = total + likelihood.log_p_x_given_h(sq, sigma)
  return total
