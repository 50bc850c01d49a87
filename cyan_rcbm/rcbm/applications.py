"""Applications of RCBM: anomaly detection and forecasting (equations.md B7;
paper "Applications of RCBM", Tables 2-3 and 5-6).

Anomaly detection. A sample's anomaly score is `-log P(X)` (Eq. 12, from
`cyan_rcbm.rcbm.likelihood.anomaly_scores`); `lowest_probability` lists the
top of that ranking, `roc_auc` scores it against planted labels and
`overlap_at_k` compares it with a frequency/volume ranking (the paper: "only
twelve out of top-100 frequent keywords are considered to be associated
with anomalies").

Forecasting. `make_forecast_task` builds the paper's protocol on any set of
windows with start times: the input is each sample up to its forecast bin
(the paper: "only the data up to its peak usage time is used"), the target
is the number of events after it (`log1p`), and the split is strict in time:
with the cutoff tau, the training samples are those whose whole window
(input and target) ended by tau, the test samples those whose forecast is
made after tau. `feature_sets` turns a 2-level RCBM and a 1-level RCBM with
2K filters into the paper's features (Baseline = raw dynamics, H1, H2,
H1+H2, H1^2); `forecast` fits the two regressors on the training split only
(hyper-parameters by cross-validation inside it) and scores the test split.

The regressors (scikit-learn, the optional 'apps' extra, imported lazily):
* 'var': the paper's VARMA is its "representative linear model". Our
  samples are independent windows, not one long series, so the linear
  forecaster is the pooled regression of the target on the sample's state
  (its feature vector), i.e. a VAR/VARX one-step regression without target
  lags, ridge-regularised (strength by leave-one-out CV on the training
  split, `RidgeCV`).
* 'svr': RBF support-vector regression, C and epsilon by 3-fold CV on the
  training split.
Features are `sign(f) log(1 + |f|)` then standardised with training
statistics (counts and activations are heavy-tailed).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from cyan_rcbm.errors import ConfigError
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import rcbm as rcbm_lib

FEATURE_SETS = ('raw', 'h1', 'h2', 'h1+h2', 'h1^2')
REGRESSORS = ('var', 'svr')


# ---------------------------------------------------------------------------
# Anomaly detection.


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Area under the ROC curve of `scores` (higher = more anomalous) for
  binary `labels` (the Mann-Whitney statistic, ties counted half).

  Raises:
    ValueError: lengths differ, or labels are not all 0/1 with both present.
  """
  s = np.asarray(scores, np.float64)
  y = np.asarray(labels)
  if s.shape != y.shape or s.ndim != 1:
    raise ValueError(f'scores {s.shape} and labels {y.shape} must be equal 1-D')
  if not np.isin(y, (0, 1)).all():
    raise ValueError('labels must be 0 or 1')
  pos, neg = int(np.sum(y == 1)), int(np.sum(y == 0))
  if pos == 0 or neg == 0:
    raise ValueError('ROC-AUC needs both positive and negative labels')
  order = np.argsort(s, kind='stable')
  ranks = np.empty(s.size)
  sorted_s = s[order]
  # Average ranks over ties (1-based).
  start = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
  end = np.r_[start[1:], s.size]
  avg = (start + end + 1) / 2.0
  ranks[order] = np.repeat(avg, end - start)
  return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k highest scores, highest first (ties: lower index)."""
  s = np.asarray(scores, np.float64)
  return np.argsort(-s, kind='stable')[:k]


def overlap_at_k(scores_a: np.ndarray, scores_b: np.ndarray, k: int) -> int:
  """How many of the top-k samples of ranking a are in the top-k of b."""
  return int(np.intersect1d(top_k(scores_a, k), top_k(scores_b, k)).size)


def volume_scores(x_NxDxT: np.ndarray,
                  rows: Sequence[int] | None = None) -> np.ndarray:
  """Frequency/volume ranking: the sum of the given rows (default all) over
  time, per sample."""
  x = np.asarray(x_NxDxT, np.float64)
  if rows is not None:
    x = x[:, list(rows)]
  return x.sum(axis=(1, 2))


def lowest_probability(log_p: np.ndarray, ids: Sequence[str], k: int
                       ) -> list[dict[str, Any]]:
  """The k samples with the lowest log-probability: rank, index, id, -log P."""
  score = -np.asarray(log_p, np.float64)
  return [{'rank': r + 1, 'index': int(i), 'id': str(ids[i]),
           'neg_log_prob': float(score[i])}
          for r, i in enumerate(top_k(score, k))]


# ---------------------------------------------------------------------------
# Forecasting.


@dataclasses.dataclass(frozen=True)
class ForecastTask:
  """Inputs, targets and a strict time split.

  Attributes:
    x_full: the whole windows [n, D, T] (training the feature extractors).
    x_input: each sample up to its forecast bin [n, D, cut].
    target: `log1p` of the events after the forecast bin [n].
    counts: the raw event counts after the forecast bin [n].
    train, test: sample indices (sorted).
    cutoff: tau (same unit as the start times).
    dropped: samples in neither split (windows spanning the cutoff).
  """
  x_full: np.ndarray
  x_input: np.ndarray
  target: np.ndarray
  counts: np.ndarray
  train: np.ndarray
  test: np.ndarray
  cutoff: float
  dropped: int


def make_forecast_task(x_NxDxT: np.ndarray, start_times: np.ndarray, *,
                       cut: int, count_rows: Sequence[int],
                       bin_seconds: float, train_fraction: float
                       ) -> ForecastTask:
  """The paper's forecasting protocol on windows with start times.

  Args:
    x_NxDxT: samples; rows `count_rows` count events per bin (they add up to
      the events of a bin).
    start_times: start of each window (bin 0).
    cut: the forecast is made after bin `cut - 1`: the input is bins
      `[0, cut)`, the target the events in bins `[cut, T)`.
    count_rows: the rows that count events.
    bin_seconds: bin width, in the unit of `start_times`.
    train_fraction: tau is this quantile of the window end times.

  Raises:
    ConfigError: cut or train_fraction out of range.
    DataError: a split is empty.
  """
  x = np.asarray(x_NxDxT)
  n, _, t = x.shape
  if not 1 <= cut < t:
    raise ConfigError(f'cut must be in [1, T={t}), got {cut}')
  if not 0 < train_fraction < 1:
    raise ConfigError(f'train_fraction must be in (0, 1), got '
                      f'{train_fraction}')
  start = np.asarray(start_times, np.float64)
  if start.shape != (n,):
    raise DataError(f'start_times has shape {start.shape}, expected ({n},)')
  end = start + t * bin_seconds
  forecast_time = start + cut * bin_seconds
  cutoff = float(np.quantile(end, train_fraction))
  train = np.flatnonzero(end <= cutoff)
  test = np.flatnonzero(forecast_time > cutoff)
  if train.size == 0 or test.size == 0:
    raise DataError(f'empty split at cutoff {cutoff}: {train.size} train, '
                    f'{test.size} test samples')
  counts = x[:, list(count_rows), cut:].sum(axis=(1, 2))
  return ForecastTask(
      x_full=x, x_input=x[:, :, :cut], target=np.log1p(np.maximum(counts, 0)),
      counts=counts, train=train, test=test, cutoff=cutoff,
      dropped=int(n - train.size - test.size))


def feature_sets(model: rcbm_lib.RCBM, model_2k: rcbm_lib.RCBM | None,
                 x_NxDxT: np.ndarray) -> dict[str, np.ndarray]:
  """The paper's forecasting features, each flattened to [n, F].

  'raw' (the input dynamics, the paper's Baseline), 'h1', 'h2' (activations
  of levels 1 and 2 of `model`), 'h1+h2', and 'h1^2' (level 1 of `model_2k`,
  a 1-level RCBM with twice the filters) when given.
  """
  if model.num_levels < 2:
    raise ValueError('feature_sets needs a model with >= 2 levels')
  x = np.asarray(x_NxDxT)
  n = x.shape[0]
  acts = rcbm_lib.infer(model, x, num_levels=2)
  out = {'raw': x.reshape(n, -1).astype(np.float64),
         'h1': acts[0].h.reshape(n, -1).astype(np.float64),
         'h2': acts[1].h.reshape(n, -1).astype(np.float64)}
  out['h1+h2'] = np.concatenate([out['h1'], out['h2']], axis=1)
  if model_2k is not None:
    out['h1^2'] = rcbm_lib.features(model_2k, x, 1).reshape(n, -1).astype(
        np.float64)
  return out


def _sklearn():
  try:
    import sklearn  # pylint: disable=g-import-not-at-top
    from sklearn import linear_model, model_selection, preprocessing, svm  # pylint: disable=g-import-not-at-top,g-multiple-import
  except ImportError as e:
    raise ImportError(
        "forecasting needs scikit-learn, the optional 'apps' extra: "
        "pip install 'cyan_rcbm[apps]'") from e
  del sklearn
  return linear_model, model_selection, preprocessing, svm


def _transform(f_train, f_test):
  _, _, preprocessing, _ = _sklearn()
  squash = lambda f: np.sign(f) * np.log1p(np.abs(f))
  scaler = preprocessing.StandardScaler().fit(squash(f_train))
  return scaler.transform(squash(f_train)), scaler.transform(squash(f_test))


def fit_predict(kind: str, f_train: np.ndarray, y_train: np.ndarray,
                f_test: np.ndarray, seed: int = 0
                ) -> tuple[np.ndarray, dict[str, Any]]:
  """Fits regressor `kind` ('var' or 'svr', module docstring) on the
  training features and predicts the test ones; returns (predictions, the
  chosen hyper-parameters)."""
  if kind not in REGRESSORS:
    raise ConfigError(f'regressor must be one of {REGRESSORS}, got {kind!r}')
  linear_model, model_selection, _, svm = _sklearn()
  a, b = _transform(np.asarray(f_train), np.asarray(f_test))
  if kind == 'var':
    reg = linear_model.RidgeCV(alphas=np.logspace(-2, 5, 15)).fit(a, y_train)
    return reg.predict(b), {'alpha': float(reg.alpha_)}
  search = model_selection.GridSearchCV(
      svm.SVR(kernel='rbf', gamma='scale'),
      {'C': [0.3, 1.0, 3.0, 10.0], 'epsilon': [0.05, 0.2]},
      cv=model_selection.KFold(3, shuffle=True, random_state=seed),
      scoring='neg_mean_squared_error')
  search.fit(a, y_train)
  return search.predict(b), {k: float(v) for k, v in
                             search.best_params_.items()}


def forecast(features: dict[str, np.ndarray], task: ForecastTask,
             regressors: Sequence[str] = REGRESSORS, seed: int = 0
             ) -> list[dict[str, Any]]:
  """Every (feature set, regressor) pair, trained on `task.train` and scored
  on `task.test`: RMSE and MAE of the `log1p` target, and the rank of the
  feature set within its regressor (1 = lowest RMSE). A 'mean' row (the
  training mean) is the floor every feature set should beat."""
  y_tr, y_te = task.target[task.train], task.target[task.test]
  rows = []
  base = np.full_like(y_te, y_tr.mean())
  rows.append({'features': 'none', 'model': 'mean',
               **_errors(y_te, base), 'rank': None, 'params': {}})
  for kind in regressors:
    block = []
    for name, f in features.items():
      pred, params = fit_predict(kind, f[task.train], y_tr, f[task.test], seed)
      block.append({'features': name, 'model': kind, **_errors(y_te, pred),
                    'params': params})
    for rank, i in enumerate(np.argsort([r['rmse'] for r in block],
                                        kind='stable')):
      block[i]['rank'] = rank + 1
    rows += block
  return rows


def _errors(y, pred):
  err = np.asarray(pred, np.float64) - np.asarray(y, np.float64)
  return {'rmse': float(np.sqrt(np.mean(err ** 2))),
          'mae': float(np.mean(np.abs(err))), 'num_test': int(err.size)}
