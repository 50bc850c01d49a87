"""`RCBM`: the whole model behind one scikit-learn-style estimator.

    est = RCBM(num_levels=2, num_filters=10, filter_length=7).fit(x_train)
    h = est.transform(x_test)            # top-level activations [n, K, S]
    log_p = est.score_samples(x_test)    # Eq. 12 per sample
    scores = est.anomaly_scores(x_test)  # -log P
    est.filters_                         # one [K_l, D_l, Tw_l] per level
    est.save('model.npz'); RCBM.load('model.npz')

It follows scikit-learn's conventions without depending on it: the
constructor only stores its arguments (`get_params` / `set_params` read and
write them, so `sklearn.base.clone` works), `fit` returns `self`, learned
attributes end with an underscore and exist only after `fit`. X is an
array [n, D, T] (samples, features, time steps) or a
`cyan_rcbm.Dynamics`. The solver pieces are `cyan_rcbm.rcbm.rcbm.fit_rcbm`
(level-by-level training), `rcbm.infer` and `likelihood` (Eq. 12).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import jax
import numpy as np

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.data.types import Dynamics
from cyan_rcbm.errors import ConfigError, InputError
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib

SCALINGS = ('std', 'none')


def _per_level(value, num_levels: int, name: str) -> list[int]:
  """An int for every level, or one int per level."""
  values = ([value] * num_levels if isinstance(value, (int, np.integer))
            else list(value))
  if len(values) != num_levels or not all(
      isinstance(v, (int, np.integer)) and v >= 1 for v in values):
    raise ConfigError(f'RCBM({name}={value!r}): expected an int >= 1 or '
                      f'{num_levels} of them (num_levels={num_levels})')
  return [int(v) for v in values]


class RCBM:
  """Recursive convolutional Bayesian model (Peng et al. 2015), as an
  estimator.

  Args:
    num_levels: L, levels stacked by max-pooling.
    num_filters: K per level (an int for all, or one per level).
    filter_length: Tw per level (in the time steps of that level's input).
    pool: max-pooling factor between levels (the last level's is unused).
    lam: penalty weight `sigma^2 / beta` of Eq. 6 (fixed, in scaled units).
    step: step rule: 'fixed' (RCBM-FS, Eq. 9), 'line_search' (warm-started
      backtracking) or 'line_search_paper' (backtracking afresh at every
      update, the paper's RCBM-LS).
    max_iters, tol: outer iterations per level, at most, and the relative
      objective change that ends a level's training.
    inner_max_iters: FISTA iterations per h-step.
    num_restarts: random initialisations per level (the best is kept).
    init: filter initialisation, 'gaussian' (the paper's) or 'patches'
      (random data patches; `cbm_layout.init_filters`).
    scaling: 'std' (divide each feature by its training std) or 'none'.
    infer_max_iters, infer_tol: FISTA settings of `transform` and the
      likelihoods on new data (h inferred from 0).
    batch_size: samples per solver chunk (0: all at once).
    seed: seed of the initialisations.

  Attributes (after `fit`):
    model_: the trained `cyan_rcbm.rcbm.rcbm.RCBM` (what `save_rcbm` writes).
    filters_: one array [K_l, D_l, Tw_l] per level, strongest first.
    strength_: per level, the training activation strength of each filter
      (Eq. 10, descending; `cyan_rcbm.knee` of its cumulative share picks K).
    sigma_, beta_: per level, the MLE of the error scale and mean activation.
    scale_: [D] divisors applied to X before level 1.
    n_features_in_: D; feature_names_in_: the D names.
  """

  def __init__(self, num_levels: int = 2, num_filters: int | Sequence[int] = 10,
               filter_length: int | Sequence[int] = 7,
               pool: int | Sequence[int] = 2, lam: float = 0.3,
               step: str = 'fixed', max_iters: int = 60, tol: float = 1e-3,
               inner_max_iters: int = 20, num_restarts: int = 1,
               init: str = 'gaussian', scaling: str = 'std',
               infer_max_iters: int = 200,
               infer_tol: float = 1e-4, batch_size: int = 2000,
               seed: int = 0):
    self.num_levels = num_levels
    self.num_filters = num_filters
    self.filter_length = filter_length
    self.pool = pool
    self.lam = lam
    self.step = step
    self.max_iters = max_iters
    self.tol = tol
    self.inner_max_iters = inner_max_iters
    self.num_restarts = num_restarts
    self.init = init
    self.scaling = scaling
    self.infer_max_iters = infer_max_iters
    self.infer_tol = infer_tol
    self.batch_size = batch_size
    self.seed = seed

  # -- scikit-learn's parameter protocol ------------------------------------

  @classmethod
  def _param_names(cls) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters
            if p != 'self']

  def get_params(self, deep: bool = True) -> dict[str, Any]:
    """The constructor arguments (`deep` is accepted for scikit-learn)."""
    del deep  # no nested estimators
    return {name: getattr(self, name) for name in self._param_names()}

  def set_params(self, **params) -> RCBM:
    """Sets constructor arguments; returns self."""
    valid = self._param_names()
    for name, value in params.items():
      if name not in valid:
        raise ConfigError(f'RCBM has no parameter {name!r}; parameters: '
                          f'{", ".join(valid)}')
      setattr(self, name, value)
    return self

  def __repr__(self) -> str:
    args = ', '.join(f'{k}={v!r}' for k, v in self.get_params().items())
    return f'RCBM({args})'

  # -- fitting ---------------------------------------------------------------

  def _specs(self) -> list[rcbm_lib.LevelSpec]:
    levels = self.num_levels
    if not isinstance(levels, (int, np.integer)) or levels < 1:
      raise ConfigError(f'RCBM(num_levels={self.num_levels!r}): expected an '
                        'int >= 1')
    ks = _per_level(self.num_filters, self.num_levels, 'num_filters')
    tws = _per_level(self.filter_length, self.num_levels, 'filter_length')
    pools = _per_level(self.pool, self.num_levels, 'pool')
    pools[-1] = 1
    return [rcbm_lib.LevelSpec(k, tw, c) for k, tw, c in zip(ks, tws, pools)]

  def _solver(self) -> cbm.SolverConfig:
    if self.init not in cbm.INITS:
      raise ConfigError(f'RCBM(init={self.init!r}): expected one of '
                        f'{cbm.INITS}')
    if self.scaling not in SCALINGS:
      raise ConfigError(f'RCBM(scaling={self.scaling!r}): expected one of '
                        f'{SCALINGS}')
    try:
      return cbm.SolverConfig(step=self.step, lam=float(self.lam),
                              inner_max_iters=int(self.inner_max_iters))
    except ValueError as e:
      raise ConfigError(f'RCBM: {e}') from None

  def fit(self, X, y=None) -> RCBM:
    """Trains the levels one after the other on X [n, D, T]; returns self.

    Raises:
      InputError: X is not a finite, non-empty [n, D, T] array.
      ConfigError: a parameter is out of range (named).
    """
    del y  # unsupervised
    x, names = _as_samples(X)
    specs, cfg = self._specs(), self._solver()
    scale = (np.ones(x.shape[1]) if self.scaling == 'none'
             else _feature_std(x))
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    try:
      model, _ = rcbm_lib.fit_rcbm(
          (x / scale[None, :, None]).astype(dtype), specs, cfg=cfg,
          feature_names=names, scale=scale,
          inference=rcbm_lib.InferenceSettings(
              max_iters=int(self.infer_max_iters), tol=float(self.infer_tol),
              batch_size=int(self.batch_size)),
          fit_kwargs=dict(max_iters=int(self.max_iters), tol=float(self.tol),
                          num_restarts=int(self.num_restarts),
                          init=self.init,
                          batch_size=int(self.batch_size),
                          seed=int(self.seed)),
          config={'estimator': self.get_params()})
    except ValueError as e:  # a level's input too short for its filters
      raise ConfigError(f'RCBM: {e}') from None
    self._set_model(model)
    return self

  def _set_model(self, model: rcbm_lib.RCBM) -> None:
    self.model_ = model
    self.filters_ = [np.asarray(level.w) for level in model.levels]
    self.strength_ = [np.asarray(level.strength) for level in model.levels]
    self.sigma_ = np.array([level.sigma for level in model.levels])
    self.beta_ = np.array([level.beta for level in model.levels])
    self.scale_ = np.asarray(model.scale)
    self.n_features_in_ = model.num_features
    self.feature_names_in_ = np.array(model.feature_names, dtype=object)

  def _check_fitted(self, what: str) -> rcbm_lib.RCBM:
    model = getattr(self, 'model_', None)
    if model is None:
      raise InputError(f'RCBM.{what}: this RCBM is not fitted yet; call '
                       'fit(X) or RCBM.load(path) first')
    return model

  # -- using a fitted model -------------------------------------------------

  def transform(self, X, level: int | None = None) -> np.ndarray:
    """Activations `h` [n, K_l, S_l] of `level` (default the top one)."""
    model = self._check_fitted('transform')
    x, _ = _as_samples(X)
    return rcbm_lib.features(model, x, level or model.num_levels)

  def fit_transform(self, X, y=None, level: int | None = None) -> np.ndarray:
    """`fit(X).transform(X, level)`."""
    return self.fit(X, y).transform(X, level)

  def score_samples(self, X) -> np.ndarray:
    """`log P(X_i)` of Eq. 12 per sample [n] (h inferred, all levels)."""
    model = self._check_fitted('score_samples')
    return likelihood.log_prob(model, _as_samples(X)[0])

  def score(self, X, y=None) -> float:
    """Mean `log P(X_i)` (higher is better, scikit-learn's convention)."""
    del y
    return float(np.mean(self.score_samples(X)))

  def anomaly_scores(self, X) -> np.ndarray:
    """`-log P(X_i)` per sample: higher is more anomalous."""
    return -self.score_samples(X)

  def save(self, path: str) -> str:
    """Writes the fitted model and these parameters to `path` (.npz)."""
    return io_lib.save_model(self._check_fitted('save'), path)

  @classmethod
  def load(cls, path: str) -> RCBM:
    """An estimator with the model `save` (or `cyan_rcbm.save_rcbm`) wrote."""
    model = io_lib.load_model(path)
    params = dict(model.config.get('estimator', {}))
    known = set(cls._param_names())
    est = cls(**{k: v for k, v in params.items() if k in known})
    if 'estimator' not in model.config:  # saved by save_rcbm: describe it
      est.set_params(num_levels=model.num_levels,
                     num_filters=[lv.num_filters for lv in model.levels],
                     filter_length=[lv.filter_length for lv in model.levels],
                     pool=[lv.pool for lv in model.levels])
    est._set_model(model)
    return est


def _as_samples(X) -> tuple[np.ndarray, list[str]]:
  """(x float64 [n, D, T], feature names) from an array or a `Dynamics`.

  Raises:
    DataError: not a finite, non-empty numeric [n, D, T] (the source file
      named for a Dynamics).
  """
  dynamics_lib.validate_dynamics(X)
  if isinstance(X, Dynamics):
    return np.asarray(X.x, np.float64), list(X.feature_names)
  x = np.asarray(X, np.float64)
  return x, [f'x{d}' for d in range(x.shape[1])]


def _feature_std(x_NxDxT: np.ndarray) -> np.ndarray:
  s = x_NxDxT.std(axis=(0, 2))
  return np.where(s > 0, s, 1.0)
