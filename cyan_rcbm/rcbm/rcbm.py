"""RCBM: CBMs stacked with max-pooling, trained level by level (equations.md
B6).

Level 1 models the data `X_1 = X` [n, D, T]. Level l + 1 models
`X_{l+1}[k, t] = max_{s < c} h_{l,k}[c t + s]`, the activations of level l
max-pooled by the factor c (length `ceil(S_l / c)`, zero padding; h >= 0),
so level l + 1 has `D_{l+1} = K_l` rows. Levels are numbered 1..L as in the
paper. The filters of each level are sorted by activation strength (Eq. 10)
before the next level is built, so row k of `X_{l+1}` is filter k of level l.

Inference (`infer`, `features`) runs the h-step (Algorithm 2) from h = 0 on
the learned filters, level by level; `cyan_rcbm.rcbm.likelihood` turns the
result into Eq. 12's joint log-probability.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import select_k


@dataclasses.dataclass(frozen=True)
class Level:
  """One trained level.

  Attributes:
    w: filters [K, D, Tw], strongest first.
    sigma, beta: MLE of the per-sample error scale and mean activation.
    lam: the penalty weight of Eq. 6 the level was trained with (inference
      uses the same).
    pool: max-pooling factor c from this level's activations to the next
      level's input.
    strength: training activation strength per filter [K] (descending).
  """
  w: np.ndarray
  sigma: float
  beta: float
  lam: float
  pool: int
  strength: np.ndarray

  @property
  def num_filters(self) -> int:
    return int(self.w.shape[0])

  @property
  def num_features(self) -> int:
    return int(self.w.shape[1])

  @property
  def filter_length(self) -> int:
    return int(self.w.shape[2])


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
  """How activations are inferred for new data (the h-step from h = 0).

  Attributes:
    max_iters: FISTA iterations at most.
    tol: relative objective change at which to stop.
    batch_size: samples per batch (0: all).
    form: operator form.
  """
  max_iters: int = 500
  tol: float = 1e-5
  batch_size: int = 2000
  form: str = 'auto'


@dataclasses.dataclass(frozen=True)
class RCBM:
  """A trained RCBM.

  Attributes:
    levels: the L levels, level 1 first.
    feature_names: names of the D input features.
    scale: [D] divisors applied to the input before level 1 (data
      normalisation chosen at training time; ones for none).
    inference: settings of `infer`.
    config: the training config, for the record (JSON-able dict).
  """
  levels: tuple[Level, ...]
  feature_names: tuple[str, ...]
  scale: np.ndarray
  inference: InferenceSettings = InferenceSettings()
  config: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_levels(self) -> int:
    return len(self.levels)

  @property
  def num_features(self) -> int:
    return self.levels[0].num_features


class LevelActivations(NamedTuple):
  """Inference result of one level for n samples.

  Attributes:
    x: the level's input [n, D_l, T_l] (level 1: the scaled data).
    h: activations [n, K_l, T_l + Tw_l - 1].
    sq_err: per-sample squared error `e^2` [n].
    l1: per-sample activation `a = sum_k ||h_k||_1` [n].
  """
  x: np.ndarray
  h: np.ndarray
  sq_err: np.ndarray
  l1: np.ndarray


def max_pool(h_NxKxS: np.ndarray | jax.Array, factor: int) -> np.ndarray:
  """`X[k, t] = max_{s < c} h[k, c t + s]`, length `ceil(S / c)` (equations.md B6)."""
  h = np.asarray(h_NxKxS)
  if factor < 1:
    raise ValueError(f'pooling factor must be >= 1, got {factor}')
  if factor == 1:
    return h
  n, k, s = h.shape
  out_len = -(-s // factor)
  padded = np.zeros((n, k, out_len * factor), h.dtype)
  padded[..., :s] = h
  return padded.reshape(n, k, out_len, factor).max(axis=-1)


@functools.partial(jax.jit, static_argnames=('cfg', 'filter_length'))
@precision.exact
def _infer_batch(x_BxTxD, w_KxDxTw, lam, *, cfg, filter_length):
  b, t, _ = x_BxTxD.shape
  h0 = jnp.zeros((b, t + filter_length - 1, w_KxDxTw.shape[0]), x_BxTxD.dtype)
  res = cbm.solve_h(x_BxTxD, w_KxDxTw, h0, jnp.zeros_like(x_BxTxD), lam, cfg)
  return res.h, res.sq_err, res.l1


def infer_level(x_NxDxT: np.ndarray, level: Level,
                settings: InferenceSettings, mesh: Mesh | None = None
                ) -> LevelActivations:
  """Task 1 (Algorithm 2) from h = 0 for one level's input.

  Batches of `min(batch_size, next power of two >= n)` samples (the last
  one zero-padded), so that sets of similar size share one compilation;
  with a device mesh, batches are split over its devices (their size
  rounded up to a multiple of the device count).
  """
  n, d, _ = x_NxDxT.shape
  cfg = cbm.SolverConfig(inner_max_iters=settings.max_iters,
                         inner_tol=settings.tol, inner_min_iters=1,
                         form=settings.form)
  size = 1 << max(0, (n - 1).bit_length())
  batch = min(settings.batch_size, size) if settings.batch_size > 0 else size
  x = cbm.to_solver_layout(x_NxDxT, batch, cfg.form, pad=True, mesh=mesh)
  dp = x.shape[-1]
  w = sharding.replicate(
      jnp.pad(jnp.asarray(level.w, x.dtype), ((0, 0), (0, dp - d), (0, 0))),
      mesh)
  lam = sharding.replicate(jnp.asarray(level.lam, x.dtype), mesh)
  parts = [_infer_batch(sharding.shard(x[c], mesh), w, lam, cfg=cfg,
                        filter_length=level.filter_length)
           for c in range(x.shape[0])]
  h, sq, l1 = (np.stack([sharding.to_host(a) for a in p]) for p in zip(*parts))
  return LevelActivations(
      x=np.asarray(x_NxDxT),
      h=cbm.from_solver_layout(h, n, level.num_filters),
      sq_err=cbm.per_sample(sq, n), l1=cbm.per_sample(l1, n))


def check_input(model: RCBM, x_NxDxT: np.ndarray, source: str = '') -> None:
  """Raises `DataError` unless x fits the model (rank, D, T, finiteness)."""
  dynamics_lib.validate_dynamics(x_NxDxT, source=source)
  x = np.asarray(x_NxDxT)
  if x.shape[1] != model.num_features:
    raise DataError(
        f'x has {x.shape[1]} features but the model was trained on '
        f'{model.num_features} ({", ".join(model.feature_names)})',
        path=source or None)
  length = x.shape[2]
  for i, level in enumerate(model.levels):
    if length < level.filter_length:
      raise DataError(
          f'samples of length {x.shape[2]} are too short for this model: '
          f'level {i + 1} input has length {length} < its filter length '
          f'{level.filter_length}', path=source or None)
    length = -(-(length + level.filter_length - 1) // level.pool)


def infer(model: RCBM, x_NxDxT: np.ndarray, *, num_levels: int | None = None,
          source: str = '', mesh: Mesh | None = None
          ) -> list[LevelActivations]:
  """Activations of levels 1..num_levels (default all) for new samples.

  Args:
    model: a trained RCBM.
    x_NxDxT: samples in the data's original units (the model's `scale` is
      applied here).
    num_levels: stop after this many levels.
    source: file name for error messages.
    mesh: split the samples over this device mesh
      (`cyan_rcbm.common.sharding`); None: one device.

  Raises:
    DataError: x is not [n, D, T] with the model's D, is empty, too short,
      or holds NaN/inf.
  """
  check_input(model, x_NxDxT, source)
  levels = model.levels[:num_levels or model.num_levels]
  x = np.asarray(x_NxDxT, np.float64) / model.scale[None, :, None]
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  x = x.astype(dtype)
  out = []
  for i, level in enumerate(levels):
    act = infer_level(x, level, model.inference, mesh)
    out.append(act)
    if i + 1 < len(levels):
      x = max_pool(act.h, level.pool)
  return out


def features(model: RCBM, x_NxDxT: np.ndarray, level: int) -> np.ndarray:
  """Activations `h` [n, K_l, S_l] of level `level` (1-based) for downstream
  use (e.g. the paper's forecasting features H1, H2)."""
  if not 1 <= level <= model.num_levels:
    raise ValueError(f'level must be in 1..{model.num_levels}, got {level}')
  return infer(model, x_NxDxT, num_levels=level)[-1].h


# ---------------------------------------------------------------------------
# Training, level by level.


@dataclasses.dataclass(frozen=True)
class LevelSpec:
  """Per-level settings: K, Tw and the pooling factor to the next level."""
  num_filters: int
  filter_length: int
  pool: int


def inference_lam(params: cbm.CBMParams, cfg: cbm.SolverConfig) -> float:
  """The penalty weight of inference: the training `lam` ('fixed'), or
  `sigma^2 / beta` of the learned model ('mle', Eq. 6)."""
  if cfg.penalty == 'fixed':
    return float(cfg.lam)
  return float(np.square(params.sigma) / params.beta)


def make_level(fit: cbm.FitResult, pool: int, lam: float
               ) -> tuple[Level, np.ndarray]:
  """A `Level` with filters sorted by strength (Eq. 10), and the sorted h."""
  strength = select_k.activation_strength(fit.h)
  order = select_k.strength_order(strength)
  level = Level(w=np.asarray(fit.params.w)[order],
                sigma=float(fit.params.sigma), beta=float(fit.params.beta),
                lam=float(lam), pool=int(pool), strength=strength[order])
  return level, fit.h[:, order]


def fit_rcbm(x_NxDxT: np.ndarray, specs: Sequence[LevelSpec], *,
             cfg: cbm.SolverConfig, feature_names: Sequence[str],
             scale: np.ndarray | None = None,
             inference: InferenceSettings = InferenceSettings(),
             fit_kwargs: dict[str, Any] | None = None,
             completed: Sequence[tuple[Level, np.ndarray]] = (),
             resume_state: cbm.CBMState | None = None,
             make_callback: Callable[[int], Callable] | None = None,
             on_level_done: Callable[[int, Level, np.ndarray, cbm.FitResult],
                                     Any] | None = None,
             config: dict[str, Any] | None = None
             ) -> tuple[RCBM, list[cbm.FitResult | None]]:
  """Trains an RCBM level by level (equations.md B6).

  Args:
    x_NxDxT: training samples (validated), already divided by `scale`.
    specs: one `LevelSpec` per level.
    cfg: solver settings (shared by all levels).
    feature_names: D names.
    scale: [D] divisors the caller applied (stored in the model).
    inference: settings stored in the model for `infer`.
    fit_kwargs: keyword arguments of `cbm.fit_cbm` (max_iters, tol, ...).
    completed: (level, sorted training h) of levels already trained (resume).
    resume_state: solver state of the first level not in `completed`.
    make_callback: level (1-based) -> per-iteration callback of `fit_cbm`.
    on_level_done: called with (level number, Level, sorted h, FitResult).
    config: stored in the model.

  Returns:
    The model and the `FitResult` of each level (None for `completed` ones).
  """
  fit_kwargs = dict(fit_kwargs or {})
  levels: list[Level] = []
  fits: list[cbm.FitResult | None] = []
  x = np.asarray(x_NxDxT)
  for i, spec in enumerate(specs):
    number = i + 1
    if i < len(completed):
      level, h = completed[i]
      fit = None
    else:
      callback = make_callback(number) if make_callback else None
      fit = cbm.fit_cbm(
          x, spec.num_filters, spec.filter_length, cfg=cfg, callback=callback,
          initial_state=resume_state if i == len(completed) else None,
          **fit_kwargs)
      level, h = make_level(fit, spec.pool, inference_lam(fit.params, cfg))
      if on_level_done:
        on_level_done(number, level, h, fit)
    levels.append(level)
    fits.append(fit)
    if i + 1 < len(specs):
      x = max_pool(h, spec.pool)
      if x.shape[2] < specs[i + 1].filter_length:
        raise ValueError(
            f'level {number + 1} input has length {x.shape[2]} < its filter '
            f'length {specs[i + 1].filter_length}; use a smaller pool or '
            'filter_length')
  model = RCBM(
      levels=tuple(levels), feature_names=tuple(feature_names),
      scale=(np.ones(len(feature_names)) if scale is None
             else np.asarray(scale, np.float64)),
      inference=inference, config=dict(config or {}))
  return model, fits
