"""Baselines of the CYAN-RNN paper (§4.1; equations.md A5).

Every fitted baseline has the neural models' predict interface
(`cyan_rcbm.cyan.evaluate`):

    predict(batch) -> (scores_BxNxU | None, expected_gap_BxN | None,
                       nll_BxN | None[, extras])

so `evaluate.evaluate(baseline, data)` scores it exactly like CYAN-RNN.
The user models (`popularity`, `mc1`, `ct_bern`, `ct_jac`) give scores and no
times; the time models (`poisson`, `hawkes`) give expected gaps and no scores.
None models both, so `nll_per_event` (joint) is None; the user or time part is
in the extras (`user_nll_per_event` for popularity and MC-1,
`time_nll_per_event` for Poisson and Hawkes).

    splits = registry.load_splits(config.data)
    model = baselines.fit_baseline('hawkes', splits)
    result = evaluate.evaluate(model, splits.test)
"""

from __future__ import annotations

from cyan_rcbm import errors
from cyan_rcbm.cyan.baselines.ct import ContinuousTimeModel, propagation_counts
from cyan_rcbm.cyan.baselines.markov import MarkovChain
from cyan_rcbm.cyan.baselines.point_process import HawkesProcess, PoissonProcess
from cyan_rcbm.cyan.baselines.popularity import Popularity
from cyan_rcbm.cyan.baselines.point_process import hawkes_expected_gap, hawkes_log_likelihood
from cyan_rcbm.data import splits as splits_lib

NAMES = ('popularity', 'mc1', 'ct_bern', 'ct_jac', 'poisson', 'hawkes')
USER_MODELS = ('popularity', 'mc1', 'ct_bern', 'ct_jac')
TIME_MODELS = ('poisson', 'hawkes')
GRAPH_MODELS = ('ct_bern', 'ct_jac')


def fit_baseline(name: str, splits: splits_lib.Splits, *, data_name: str = '',
                 max_events: int = 0, hawkes_sigma: float = 1.0):
  """Fits baseline `name` on `splits.train` (MC-1 also reads `splits.valid`).

  Args:
    name: one of `NAMES`.
    splits: the data (train; valid only to choose MC-1's smoothing; test is
      never read).
    data_name: the data set's name, for error messages.
    max_events: keep the last `max_events` events of each cascade (0: all),
      as `config.data.max_events` does for the neural models.
    hawkes_sigma: the Hawkes kernel scale (paper: 1, in the data's unit).

  Raises:
    ConfigError: unknown name; CT models on a data set without a graph.
  """
  if name == 'popularity':
    return Popularity.fit(splits.train, max_events=max_events)
  if name == 'mc1':
    return MarkovChain.fit(splits.train, splits.valid, max_events=max_events)
  if name in GRAPH_MODELS:
    kind = 'bernoulli' if name == 'ct_bern' else 'jaccard'
    return ContinuousTimeModel.fit(splits.train, kind, data_name=data_name,
                                   max_events=max_events)
  if name == 'poisson':
    return PoissonProcess.fit(splits.train, max_events=max_events)
  if name == 'hawkes':
    return HawkesProcess.fit(splits.train, sigma=hawkes_sigma,
                             max_events=max_events)
  raise errors.ConfigError(f'unknown baseline {name!r}; valid: {NAMES}.')


__all__ = ['NAMES', 'USER_MODELS', 'TIME_MODELS', 'GRAPH_MODELS',
           'fit_baseline', 'Popularity', 'MarkovChain', 'ContinuousTimeModel',
           'PoissonProcess', 'HawkesProcess', 'propagation_counts',
           'hawkes_expected_gap', 'hawkes_log_likelihood']
