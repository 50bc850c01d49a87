"""Calibration of CYAN-RNN's Monte Carlo size forecasts on synthetic cascades.

python scripts/forecast_calibration.py --workdir=runs/forecast_calibration

Trains (or resumes) two CYAN-RNN(cov) on a synthetic set (default: CP-Exp
with 4,000 cascades) with the library (`cr.train_cyan`): `WORKDIR/plain`
with the paper's loss (Eq. 8) and `WORKDIR/censored` with
`train.censor_end = --censor_end` (the censored last gap
`-log S(T - t_N)`; skipped when 0). Observes each of `--num_test` test
cascades up to `--cut` and, for each `--horizons` h, forecasts its size at
`cut + h` with `CyanModel.forecast_sizes` (`observed_until = cut`);
`cut + h = 100`, the generator's horizon T, is the final size. Reports, per
nominal level, the fraction of test cascades whose true size falls in the
interval, the uniformity of the randomised PIT (KS p-value) and the
median's absolute error, the same split by whether the cascade was silent
for at least `--silent` before the cut, next to:

* an empirical baseline: the sizes at `cut + h` of the training cascades
  that had the same number of events at the cut (a nonparametric
  forecaster of the same data);
* with `--stop_class` (a prototype, not a library option): a CYAN-RNN(cov)
  with one more "user", STOP, in its softmax, so that `pi_k = p(STOP | H_k)`
  is the probability that the cascade ends after event k (a cure-fraction
  law: the next gap is `f(d)` with probability `1 - pi_k`, infinite with
  `pi_k`). Loss: Eq. 8 plus, per cascade, `-log[pi_N + (1 - pi_N)
  S(censor_end - t_N)]` (`-log pi_N` when `censor_end = 0`). Forecasts use
  the library sampler on the U+1 users and cut every sample at its first
  STOP; given the silence `d0 = cut - t_N` the first draw must be STOP with
  probability `pi_N / (pi_N + (1 - pi_N) S(d0))`, not `pi_N`, so
  `3 x num_samples` draws are resampled with weights 1 (first draw STOP)
  and `S(d0)` (first draw a user). Trained with its own loop (no
  checkpoints: retrained on every run).
* the well-specified case: "true" cascades drawn from the trained model
  itself, cut and forecast the same way (coverage must be nominal up to
  Monte Carlo error; this checks the sampler and the conditioning, not the
  model), for each trained model.

Every forecaster (the three models and the empirical baseline) is also
recalibrated per horizon on the first `--num_calib` validation cascades
(`cyan_rcbm.cyan.recalibration`, Kuleshov et al. 2018: the quantile levels
of its intervals become the order statistics of the validation cascades'
randomised PITs; the array-level functions, so that the STOP prototype's
samples work too) and scored on the same test cascades: coverage, and the
KS p-value of the recalibrated PIT `R(u)` (R: the validation PITs' CDF).
'in sample range' is the fraction of test truths between the smallest and
the largest of their samples: no interval of sample quantiles, recalibrated
or not, covers more.

Writes `forecast_calibration.json` and `.md` to the workdir.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np
from scipy import stats

import cyan_rcbm as cr
from cyan_rcbm.cyan import recalibration
from cyan_rcbm.cyan import sampling
from cyan_rcbm.data import types
import stop_class_prototype  # scripts/, next to this file

_WORKDIR = flags.DEFINE_string('workdir', 'runs/forecast_calibration',
                               'Run directory (resumes training).')
_CONFIG = flags.DEFINE_string('config', 'configs/cyan.py:synthetic_cp_exp',
                              'CYAN config path[:variant].')
_NUM_CASCADES = flags.DEFINE_integer('num_cascades', 4000,
                                     'Synthetic cascades (80/10/10 split).')
_EPOCHS = flags.DEFINE_integer('epochs', 40, 'Training epochs (upper bound).')
_PATIENCE = flags.DEFINE_integer('patience', 6, 'Early-stopping patience.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam step size.')
_NUM_TEST = flags.DEFINE_integer('num_test', 200, 'Test cascades forecast.')
_NUM_CALIB = flags.DEFINE_integer(
    'num_calib', 400, 'Validation cascades each forecaster is recalibrated '
    'on (0: no recalibration).')
_CUT = flags.DEFINE_float('cut', 1.0, 'Observation cut time.')
_HORIZONS = flags.DEFINE_multi_float(
    'horizons', [0.25, 1.0, 4.0, 99.0],
    'Forecast horizons after the cut (cut + 99 = the generator horizon '
    'T = 100: the final size).')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 200,
                                    'Monte Carlo samples per forecast.')
_LEVELS = flags.DEFINE_list('levels', ['0.5', '0.8', '0.9'],
                            'Nominal interval levels.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_CENSOR_END = flags.DEFINE_float(
    'censor_end', 100.0,
    'If > 0, also train a model with train.censor_end = this (the loss adds '
    'the censored last gap -log S(censor_end - t_N); the generator horizon '
    'is T = 100) and forecast with it. 0: only the paper\'s loss (Eq. 8).')
_STOP_CLASS = flags.DEFINE_bool(
    'stop_class', True, 'Also train and forecast with the STOP-class '
    'prototype (module docstring; scripts/stop_class_prototype.py).')
_SILENT = flags.DEFINE_float(
    'silent', 0.5, 'Coverage is also split by whether a cascade had no event '
    'in the last `silent` time units before the cut.')


def _score(samples: list[np.ndarray], truth: np.ndarray,
           levels: list[float], rng: np.random.Generator,
           calib_pits: np.ndarray | None = None) -> dict:
  """Coverage per level, randomised-PIT KS p-value, |median - truth|.

  With `calib_pits` (held-out PITs of the same forecaster), the intervals
  are recalibrated on them and the PIT reported is `R(u)`, R their CDF.
  """
  out = {}
  for level in levels:
    q = ((1 - level) / 2, (1 + level) / 2) if calib_pits is None else (
        recalibration.recalibrated_levels(calib_pits, level))
    lo, hi = np.array([recalibration.interval(s, *q) for s in samples]).T
    out[f'coverage@{level:g}'] = float(np.mean((lo <= truth) &
                                               (truth <= hi)))
    out[f'width@{level:g}'] = float(np.mean(hi - lo))
    if calib_pits is not None:
      out[f'levels@{level:g}'] = q
  # no interval of the samples' quantiles holds a truth outside this range.
  out['coverage@range'] = float(np.mean(
      [s.min() <= t <= s.max() for s, t in zip(samples, truth)]))
  pit = recalibration.randomised_pit(samples, truth, rng)
  if calib_pits is not None:
    pit = np.searchsorted(np.sort(calib_pits), pit, side='right') / len(
        calib_pits)
  out['pit_ks_pvalue'] = float(stats.kstest(pit, 'uniform').pvalue)
  out['pit_mean'] = float(pit.mean())
  out['median_abs_error'] = float(np.mean(np.abs(
      np.array([np.median(s) for s in samples]) - truth)))
  out['mean_forecast'] = float(np.mean([s.mean() for s in samples]))
  out['mean_truth'] = float(truth.mean())
  return out


def _score_parts(samples: list[np.ndarray], truth: np.ndarray,
                 silent: np.ndarray, levels: list[float],
                 rng: np.random.Generator,
                 calib_pits: np.ndarray | None = None) -> dict:
  """`_score` of all cascades, plus 'silent' / 'active' for each part."""
  out = _score(samples, truth, levels, rng, calib_pits)
  for name, part in (('silent', silent), ('active', ~silent)):
    if part.any():
      out[name] = _score([s for s, p in zip(samples, part) if p],
                         truth[part], levels, rng, calib_pits)
  return out


def _empirical(train: types.CascadeDataset, prefixes, cut: float, end: float,
               min_matches: int = 20) -> list[np.ndarray]:
  """Sizes at `end` of training cascades with the same size at the cut."""
  at_cut = np.array([len(cr.observed_prefix(c, cut)) for c in train.cascades])
  final = _sizes(train.cascades, end)
  out = []
  for p in prefixes:
    n = len(p)
    width = 0
    while True:  # widen the match until there are enough cascades
      match = np.abs(at_cut - n) <= width
      if match.sum() >= min_matches or width > 32:
        break
      width += 1
    # sizes relative to the prefix: the baseline forecasts the growth.
    out.append(n + np.maximum(final[match] - at_cut[match], 0))
  return out


def _sizes(cascades, end: float) -> np.ndarray:
  return np.array([int((c.times <= end).sum()) for c in cascades])


def _forecast(model, prefixes, horizon, cut, levels, seed) -> list[np.ndarray]:
  return [f.samples for f in model.forecast_sizes(
      prefixes, horizon=horizon, observed_until=[cut] * len(prefixes),
      num_samples=_NUM_SAMPLES.value, level=max(levels), seed=seed)]


def _model_as_truth(model, test, cut: float) -> list[types.Cascade]:
  """Cascades drawn from the model itself, from the test cascades' roots."""
  roots = [cr.observed_prefix(c, 0.0) for c in test]
  drawn = sampling.sample_continuations(
      model.graphdef, model.params, roots, num_samples=1,
      max_events=model.num_users - 1, seed=_SEED.value + 1,
      horizon=max(_HORIZONS.value) + cut)
  return [sampling.continuation_cascades(r, drawn, [i])[0]
          for i, r in enumerate(roots)]


def _slope(params) -> float:
  """The learned slope `w = softplus(time_w_raw)` of the intensity."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if 'time_w_raw' in jax.tree_util.keystr(path):
      return float(jax.nn.softplus(jax.device_get(leaf)))
  return float('nan')


def _train(config, workdir: str) -> tuple[cr.CyanModel, float]:
  t0 = time.perf_counter()
  model = cr.train_cyan(config, workdir)
  return model, time.perf_counter() - t0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  levels = [float(x) for x in _LEVELS.value]
  cut = _CUT.value
  overrides = dict(data__num_cascades=_NUM_CASCADES.value,
                   train__num_epochs=_EPOCHS.value,
                   train__patience=_PATIENCE.value,
                   train__learning_rate=_LR.value)
  models = {}
  report = dict(config=_CONFIG.value, overrides=overrides, cut=cut,
                censor_end=_CENSOR_END.value, num_samples=_NUM_SAMPLES.value,
                horizons={})
  runs = [('model', 0.0)]
  if _CENSOR_END.value > 0:
    runs.append(('model_censored', _CENSOR_END.value))
  for key, censor_end in runs:
    config = cr.load_config(_CONFIG.value, train__censor_end=censor_end,
                            **overrides)
    sub = 'plain' if censor_end == 0 else 'censored'
    model, seconds = _train(config, os.path.join(_WORKDIR.value, sub))
    models[key] = model
    report[key] = dict(workdir=sub, train_seconds=seconds,
                       test_metrics=model.test_metrics,
                       slope_w=_slope(model.params))
  splits = models['model'].splits()
  test = list(splits.test.cascades[:_NUM_TEST.value])
  prefixes = [cr.observed_prefix(c, cut) for c in test]
  silent = np.array([cut - p.times[-1] >= _SILENT.value for p in prefixes])
  valid = list(splits.valid.cascades[:_NUM_CALIB.value])
  valid_prefixes = [cr.observed_prefix(c, cut) for c in valid]
  report.update(num_test=len(test), silent_fraction=float(silent.mean()),
                observed_mean=float(np.mean([len(p) for p in prefixes])),
                num_calib=len(valid))
  fakes = {key: _model_as_truth(m, test, cut) for key, m in models.items()}
  stop_times = None
  if _STOP_CLASS.value:
    t0 = time.perf_counter()
    config = cr.load_config(_CONFIG.value, **overrides)
    graphdef, params, stop_id, best = stop_class_prototype.train(
        config, splits, _CENSOR_END.value)
    report['model_stop'] = dict(train_seconds=time.perf_counter() - t0,
                                best_valid_objective=best,
                                slope_w=_slope(params))
    t0 = time.perf_counter()
    stop_times = stop_class_prototype.event_times(
        graphdef, params, stop_id, prefixes, cut, _NUM_SAMPLES.value,
        _SEED.value)
    report['model_stop']['sample_seconds'] = time.perf_counter() - t0
    if valid:
      stop_valid_times = stop_class_prototype.event_times(
          graphdef, params, stop_id, valid_prefixes, cut, _NUM_SAMPLES.value,
          _SEED.value + 3)
  for horizon in _HORIZONS.value:
    rng = np.random.default_rng(0)
    end = cut + horizon
    truth, valid_truth = _sizes(test, end), _sizes(valid, end)
    row = report['horizons'][f'{horizon:g}'] = dict(
        no_growth_abs_error=float(np.mean(np.abs(
            truth - np.array([len(p) for p in prefixes])))))
    forecasts = dict(
        empirical_baseline=_empirical(splits.train, prefixes, cut, end))
    calib = dict(
        empirical_baseline=_empirical(splits.train, valid_prefixes, cut, end))
    for key, model in models.items():
      forecasts[key] = _forecast(model, prefixes, horizon, cut, levels,
                                 _SEED.value)
      if valid:
        calib[key] = _forecast(model, valid_prefixes, horizon, cut, levels,
                               _SEED.value + 3)
      fake_prefixes = [cr.observed_prefix(c, cut) for c in fakes[key]]
      row[key + '_as_truth'] = _score(
          _forecast(model, fake_prefixes, horizon, cut, levels,
                    _SEED.value + 2), _sizes(fakes[key], end), levels, rng)
    if stop_times is not None:
      forecasts['model_stop'] = [len(p) + np.sum(t <= end, axis=1)
                                 for p, t in zip(prefixes, stop_times)]
      if valid:
        calib['model_stop'] = [len(p) + np.sum(t <= end, axis=1)
                               for p, t in zip(valid_prefixes,
                                               stop_valid_times)]
    for key, samples in forecasts.items():
      row[key] = _score_parts(samples, truth, silent, levels, rng)
      if valid:
        pits = recalibration.randomised_pit(calib[key], valid_truth, rng)
        row[key + '_recalibrated'] = _score_parts(samples, truth, silent,
                                                  levels, rng, pits)
        row[key]['calibration_set'] = _score(calib[key], valid_truth,
                                             levels, rng)

  forecasters = (
      ('model', 'CYAN-RNN(cov), Eq. 8'),
      ('model_censored', 'CYAN-RNN(cov), Eq. 8 + censored last gap'),
      ('model_stop', 'STOP-class prototype (+ censored last gap)'),
      ('empirical_baseline', 'empirical (train cascades, same size at cut)'))
  recal = f' -- recalibrated on {len(valid)} valid'
  names = tuple(x for key, name in forecasters for x in (
      (key, name), (key + '_recalibrated', name + recal))) + (
          ('model_as_truth', 'Eq. 8 model, truth drawn from it'),
          ('model_censored_as_truth', 'censored model, truth drawn from it'))
  head = ['horizon', 'forecaster'] + [f'cover {lv:g}' for lv in levels] + [
      'in sample range', 'PIT KS p', 'mean forecast', 'mean truth',
      '|median - truth|']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for horizon, by_name in report['horizons'].items():
    for key, name in names:
      if key not in by_name:
        continue
      r = by_name[key]
      cells = [horizon, name] + [f'{r[f"coverage@{lv:g}"]:.3f}'
                                 for lv in levels] + [
          f'{r["coverage@range"]:.3f}', f'{r["pit_ks_pvalue"]:.2g}',
          f'{r["mean_forecast"]:.2f}', f'{r["mean_truth"]:.2f}',
          f'{r["median_abs_error"]:.2f}']
      lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['', f'Split by silence before the cut (>= {_SILENT.value:g}: '
            f'{report["silent_fraction"]:.2f} of the test cascades): '
            f'cover {max(levels):g} silent / active', '',
            '| horizon | forecaster | silent | active |', '|---|---|---|---|']
  for horizon, by_name in report['horizons'].items():
    for key, name in names[:8]:
      if key in by_name:
        cover = [by_name[key].get(p, {}).get(f'coverage@{max(levels):g}',
                                             float('nan'))
                 for p in ('silent', 'active')]
        lines.append(f'| {horizon} | {name} | {cover[0]:.3f} | '
                     f'{cover[1]:.3f} |')
  table = '\n'.join(lines)
  print(table)
  print(json.dumps({k: v for k, v in report.items()
                    if k not in ('horizons',)}))
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, 'forecast_calibration.json'),
            'w') as f:
    json.dump(report, f, indent=2)
  with open(os.path.join(_WORKDIR.value, 'forecast_calibration.md'),
            'w') as f:
    f.write(table + '\n')


if __name__ == '__main__':
  app.run(main)
