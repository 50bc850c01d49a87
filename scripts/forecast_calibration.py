"""Calibration of CYAN-RNN's Monte Carlo size forecasts on synthetic cascades.

python scripts/forecast_calibration.py --workdir=runs/forecast_calibration

Trains (or resumes) a CYAN-RNN(cov) on a synthetic set (default: CP-Exp
with 4,000 cascades), observes each of `--num_test` test cascades up to
`--cut` and, for each `--horizons` h, forecasts its size at `cut + h` with
`CyanModel.forecast_sizes` (`observed_until = cut`); `cut + h = 100`, the
generator's horizon T, is the final size. Reports, per nominal level, the
fraction of test cascades whose true size falls in the interval, the
uniformity of the randomised PIT (KS p-value) and the median's absolute
error, next to:

* an empirical baseline: the sizes at `cut + h` of the training cascades
  that had the same number of events at the cut (a nonparametric
  forecaster of the same data);
* the well-specified case: "true" cascades drawn from the trained model
  itself, cut and forecast the same way (coverage must be nominal up to
  Monte Carlo error; this checks the sampler and the conditioning, not the
  model).

Writes `forecast_calibration.json` and `.md` to the workdir.
"""

from __future__ import annotations

import functools
import json
import os
import time

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

import cyan_rcbm as cr
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import sampling
from cyan_rcbm.cyan import tpp
from cyan_rcbm.cyan import train as train_lib
from cyan_rcbm.data import types

_WORKDIR = flags.DEFINE_string('workdir', 'runs/forecast_calibration',
                               'Run directory (resumes training).')
_CONFIG = flags.DEFINE_string('config', 'configs/cyan.py:synthetic_cp_exp',
                              'CYAN config path[:variant].')
_NUM_CASCADES = flags.DEFINE_integer('num_cascades', 4000,
                                     'Synthetic cascades (80/10/10 split).')
_EPOCHS = flags.DEFINE_integer('epochs', 10, 'Training epochs (upper bound).')
_NUM_TEST = flags.DEFINE_integer('num_test', 200, 'Test cascades forecast.')
_CUT = flags.DEFINE_float('cut', 1.0, 'Observation cut time.')
_HORIZONS = flags.DEFINE_multi_float(
    'horizons', [0.5, 2.0, 99.0],
    'Forecast horizons after the cut (cut + 99 = the generator horizon '
    'T = 100: the final size).')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 200,
                                    'Monte Carlo samples per forecast.')
_LEVELS = flags.DEFINE_list('levels', ['0.5', '0.8', '0.9'],
                            'Nominal interval levels.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_CENSOR_END = flags.DEFINE_float(
    'censor_end', 100.0,
    'If > 0, also train a model whose loss adds the censored last gap '
    '-log S(censor_end - t_N) (the cascade is observed until censor_end '
    'after its first event; the generator horizon T = 100) and forecast '
    'with it. 0: only the library model (Eq. 8).')
_CENSORED_LR = flags.DEFINE_float('censored_learning_rate', 1e-3,
                                  'Adam step size of the censored model.')
_CENSORED_EPOCHS = flags.DEFINE_integer('censored_epochs', 10,
                                        'Epochs of the censored model.')


def _score(samples: list[np.ndarray], truth: np.ndarray,
           levels: list[float], rng: np.random.Generator) -> dict:
  """Coverage per level, randomised-PIT KS p-value, |median - truth|."""
  out = {}
  for level in levels:
    lo = np.array([np.quantile(s, (1 - level) / 2, method='inverted_cdf')
                   for s in samples])
    hi = np.array([np.quantile(s, (1 + level) / 2, method='inverted_cdf')
                   for s in samples])
    out[f'coverage@{level:g}'] = float(np.mean((lo <= truth) &
                                               (truth <= hi)))
    out[f'width@{level:g}'] = float(np.mean(hi - lo))
  pit = np.array([np.mean(s < t) + rng.uniform() * np.mean(s == t)
                  for s, t in zip(samples, truth)])
  out['pit_ks_pvalue'] = float(stats.kstest(pit, 'uniform').pvalue)
  out['pit_mean'] = float(pit.mean())
  out['median_abs_error'] = float(np.mean(np.abs(
      np.array([np.median(s) for s in samples]) - truth)))
  out['mean_forecast'] = float(np.mean([s.mean() for s in samples]))
  out['mean_truth'] = float(truth.mean())
  return out


def _empirical(train: types.CascadeDataset, prefixes, cut: float, end: float,
               min_matches: int = 20) -> list[np.ndarray]:
  """Sizes at `end` of training cascades with the same size at the cut."""
  at_cut = np.array([len(cr.observed_prefix(c, cut)) for c in train.cascades])
  final = np.array([int((c.times <= end).sum()) for c in train.cascades])
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


def _censored_loss(graphdef, censor_end, params, users, gaps, mask, times):
  """Eq. 8 plus `-log S(censor_end - t_N)` at each cascade's last event.

  Eq. 8 scores only observed next events, so the model never learns that a
  cascade stops: the survival of the gap after the last event until the end
  of the observation window is the missing term of the point-process
  likelihood on a finite window.
  """
  out = nnx.merge(graphdef, params)(users, gaps, mask)
  user_nll, time_nll, has_next = model_lib.event_nll(out, users, gaps, mask)
  last = mask & ~has_next
  remaining = jnp.maximum(censor_end - times, 0.0)
  censored = jnp.where(last, jnp.exp(tpp.log_integral(remaining, out.b,
                                                      out.w)), 0.0)
  count = jnp.maximum(jnp.sum(has_next), 1)
  return (jnp.sum(user_nll) + jnp.sum(time_nll) + jnp.sum(censored)) / count


def _train_censored(config, splits, censor_end: float) -> cr.CyanModel:
  """Adam on `_censored_loss` for `config.train.num_epochs` epochs."""
  train_b, _, _ = train_lib.make_batchers(config, splits)
  gaps = np.concatenate([np.diff(c.times) for c in splits.train.cascades])
  graphdef, params = model_lib.init_params(
      config.model, splits.train.num_users, calendar=False,
      time_b_init=-np.log(max(gaps.mean(), 1e-9)),
      time_w_scale=1.0 / max(gaps.max(), 1e-9), seed=config.seed)
  tx = train_lib.create_optimizer(config.train)
  opt_state = tx.init(params)
  grad = jax.value_and_grad(functools.partial(_censored_loss, graphdef,
                                              censor_end))

  @jax.jit
  def step(params, opt_state, users, gaps, mask, times):
    loss, g = grad(params, users, gaps, mask, times)
    updates, opt_state = tx.update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  for epoch in range(config.train.num_epochs):
    losses = []
    for batch in train_b.batches(config.seed, epoch):
      params, opt_state, loss = step(params, opt_state, batch.users,
                                     batch.gaps, batch.mask, batch.times)
      losses.append(loss)
    print(f'[censored] epoch {epoch + 1}: train loss '
          f'{float(np.mean(jax.device_get(losses))):.4f}', flush=True)
  return cr.CyanModel(config, graphdef, params, splits.train.vocab,
                      time_unit=splits.train.time_unit, splits=splits)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  levels = [float(x) for x in _LEVELS.value]
  cut = _CUT.value
  config = cr.load_config(_CONFIG.value, data__num_cascades=_NUM_CASCADES.value,
                          train__num_epochs=_EPOCHS.value)
  t0 = time.perf_counter()
  model = cr.train_cyan(config, _WORKDIR.value)
  train_seconds = time.perf_counter() - t0
  splits = model.splits()
  test = list(splits.test.cascades[:_NUM_TEST.value])
  prefixes = [cr.observed_prefix(c, cut) for c in test]
  report = dict(config=_CONFIG.value, num_cascades=_NUM_CASCADES.value,
                test_metrics=model.test_metrics, num_test=len(test), cut=cut,
                num_samples=_NUM_SAMPLES.value,
                observed_mean=float(np.mean([len(p) for p in prefixes])),
                train_seconds=train_seconds, horizons={})
  # Well-specified truths: cascades drawn from the model, from the test roots.
  roots = [cr.observed_prefix(c, 0.0) for c in test]
  drawn = sampling.sample_continuations(
      model.graphdef, model.params, roots, num_samples=1,
      max_events=model.num_users - 1, seed=_SEED.value + 1,
      horizon=max(_HORIZONS.value) + cut)
  fake = [sampling.continuation_cascades(r, drawn, [i])[0]
          for i, r in enumerate(roots)]
  fake_prefixes = [cr.observed_prefix(c, cut) for c in fake]
  censored = None
  if _CENSOR_END.value > 0:
    t0 = time.perf_counter()
    censored_config = cr.load_config(
        _CONFIG.value, data__num_cascades=_NUM_CASCADES.value,
        train__num_epochs=_CENSORED_EPOCHS.value,
        train__learning_rate=_CENSORED_LR.value)
    censored = _train_censored(censored_config, splits, _CENSOR_END.value)
    report['censored_train_seconds'] = time.perf_counter() - t0
    report['censored_test_metrics'] = censored.evaluate('test')
  for horizon in _HORIZONS.value:
    rng = np.random.default_rng(0)
    end = cut + horizon
    truth = np.array([int((c.times <= end).sum()) for c in test])
    t0 = time.perf_counter()
    forecasts = model.forecast_sizes(
        prefixes, horizon=horizon, observed_until=[cut] * len(prefixes),
        num_samples=_NUM_SAMPLES.value, level=max(levels), seed=_SEED.value)
    seconds = time.perf_counter() - t0
    fake_forecasts = model.forecast_sizes(
        fake_prefixes, horizon=horizon,
        observed_until=[cut] * len(fake_prefixes),
        num_samples=_NUM_SAMPLES.value, level=max(levels),
        seed=_SEED.value + 2)
    fake_truth = np.array([int((c.times <= end).sum()) for c in fake])
    report['horizons'][f'{horizon:g}'] = dict(
        forecast_seconds=seconds,
        truncated=float(np.mean([f.truncated for f in forecasts])),
        no_growth_abs_error=float(np.mean(np.abs(
            truth - np.array([len(p) for p in prefixes])))),
        model=_score([f.samples for f in forecasts], truth, levels, rng),
        empirical_baseline=_score(
            _empirical(splits.train, prefixes, cut, end), truth, levels, rng),
        model_as_truth=_score([f.samples for f in fake_forecasts],
                              fake_truth, levels, rng))
    if censored is not None:
      forecasts = censored.forecast_sizes(
          prefixes, horizon=horizon, observed_until=[cut] * len(prefixes),
          num_samples=_NUM_SAMPLES.value, level=max(levels),
          seed=_SEED.value)
      report['horizons'][f'{horizon:g}']['model_censored'] = _score(
          [f.samples for f in forecasts], truth, levels, rng)

  names = (('model', 'CYAN-RNN(cov), synthetic truth'),
           ('empirical_baseline', 'empirical (train cascades, same size at cut)'),
           ('model_as_truth', 'CYAN-RNN(cov), truth drawn from the model'),
           ('model_censored', 'CYAN-RNN(cov) + censored last gap, synthetic truth'))
  head = ['horizon', 'forecaster'] + [f'cover {lv:g}' for lv in levels] + [
      'PIT KS p', 'mean forecast', 'mean truth', '|median - truth|']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for horizon, by_name in report['horizons'].items():
    for key, name in names:
      if key not in by_name:
        continue
      r = by_name[key]
      cells = [horizon, name] + [f'{r[f"coverage@{lv:g}"]:.3f}'
                                 for lv in levels] + [
          f'{r["pit_ks_pvalue"]:.2g}', f'{r["mean_forecast"]:.2f}',
          f'{r["mean_truth"]:.2f}', f'{r["median_abs_error"]:.2f}']
      lines.append('| ' + ' | '.join(cells) + ' |')
  table = '\n'.join(lines)
  print(table)
  print(json.dumps({k: v for k, v in report.items()
                    if k not in ('horizons', 'test_metrics')}))
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, 'forecast_calibration.json'),
            'w') as f:
    json.dump(report, f, indent=2)
  with open(os.path.join(_WORKDIR.value, 'forecast_calibration.md'),
            'w') as f:
    f.write(table + '\n')


if __name__ == '__main__':
  app.run(main)
