"""What the CYAN-RNN reproduction runs: data sets, models, seeds and configs.

`make_plan` checks a mode's choices; `run_config` is the `configs/cyan.py`
config of one run in a mode (budgets, learning rate, splits); `run_dir` the
run's workdir under `--out_dir/runs/<data set>/<model>[-seed<k>]`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from cyan_rcbm import errors
from cyan_rcbm.common import config_loading
from cyan_rcbm.cyan import baselines
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import train

GENERATED = ('synthetic_cp_exp', 'synthetic_cp_ray', 'synthetic_random_exp',
             'synthetic_random_ray')
AUTHORS = ('cyanrnn_cp_exp', 'cyanrnn_random_exp')
SYNTHETIC = GENERATED + AUTHORS
REAL = ('twitter', 'android', 'christianity', 'topolstm_twitter')
DATASETS = SYNTHETIC + REAL
NEURAL = ('rmtpp', 'cyan', 'cyan_cov')
MODELS = baselines.NAMES + NEURAL
LABELS = {'popularity': 'Popularity', 'mc1': 'MC-1', 'ct_bern': 'CT-Bern', 'ct_jac': 'CT-Jac',
          'poisson': 'Poisson', 'hawkes': 'Hawkes', 'rmtpp': 'RMTPP',
          'cyan': 'CYAN-RNN', 'cyan_cov': 'CYAN-RNN(cov)'}
ROW_KEYS = ('dataset', 'model', 'seed') + metrics.METRIC_KEYS + (
    'user_nll_per_event', 'time_nll_per_event', 'time_unit', 'split',
    'epochs', 'wall_s', 'note')
USER_KEYS = ('acc@1', 'acc@5', 'mrr') + tuple(
    f'{m}@{k}' for m in ('hits', 'map') for k in metrics.HITS_KS)
CHRONOLOGICAL = ('twitter', 'android', 'christianity')
EVAL_FILE = train.EVAL_FILE
TIMING_FILE = 'reproduce_timing.json'

# Full mode: epochs / patience per data set (selection on validation NLL),
# sized so that the whole run takes a few hours on 2 shared CPU cores (see
# docs/reproduction.md for the measured wall time).
FULL_BUDGET = {
    **{d: dict(num_epochs=12, patience=3) for d in SYNTHETIC},
    'twitter': dict(num_epochs=3, patience=1),
    'android': dict(num_epochs=20, patience=3),
    'christianity': dict(num_epochs=20, patience=3),
    'topolstm_twitter': dict(num_epochs=20, patience=3),
}
# Real sets run with configs/cyan.py's real-data defaults (transition prior,
# width 64, lr 1e-3, early stopping on the validation MRR). twitter
# keeps the last 200 events of each cascade (MS-HGAT feeds at most 200
# events), which cuts the padded length of its longest training cascades
# from 2,368 to 200.
TWITTER_MAX_EVENTS = 200
# A user's own cascade files, by the name they run under (`add_file`):
# name -> (path, format, graph path or '').
USER_FILES: dict[str, tuple[str, str, str]] = {}
QUICK_DATASETS = ('synthetic_cp_exp', 'cyanrnn_random_exp', 'christianity')
TINY_DATASETS = ('synthetic_cp_exp', 'cyanrnn_random_exp')


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to run: mode, data sets, models, seeds, folders."""
  mode: str  # 'full' | 'quick' | 'tiny'
  out_dir: str
  results_dir: str
  datasets: tuple[str, ...]
  models: tuple[str, ...]
  seeds: tuple[int, ...]
  notes: str | None = None


def add_file(spec: str) -> str:
  """Registers `name=path:format[:graph]`, a user's file; returns the name."""
  name, _, rest = spec.partition('=')
  parts = rest.split(':')
  if not name or name in DATASETS or len(parts) not in (2, 3) or not all(
      parts[:2]):
    raise errors.ConfigError(
        f'--files entry {spec!r}: expected name=path:format[:graph] with a '
        f'name that is not a built-in set ({", ".join(DATASETS)}).')
  path, fmt = parts[:2]
  graph = parts[2] if len(parts) == 3 else ''
  for what in (path, graph):
    if what and not os.path.exists(what):
      raise errors.ConfigError(f'--files entry {spec!r}: {what} does not '
                               'exist.')
  USER_FILES[name] = (path, fmt, graph)
  return name


def make_plan(out_dir: str, mode: str = 'full', *,
              datasets: Sequence[str] | None = None,
              models: Sequence[str] | None = None, seeds: int | None = None,
              results_dir: str | None = None,
              notes: str | None = None) -> Plan:
  """Checks the choices and fills in the mode's defaults."""
  if mode not in ('full', 'quick', 'tiny'):
    raise errors.ConfigError(f'mode must be full, quick or tiny; got {mode!r}.')
  default = {'full': DATASETS, 'quick': QUICK_DATASETS,
             'tiny': TINY_DATASETS}[mode]
  datasets = tuple(datasets or default)
  models = tuple(models or MODELS)
  for name, chosen, valid in (('data set', datasets,
                                DATASETS + tuple(USER_FILES)),
                              ('model', models, MODELS)):
    unknown = [c for c in chosen if c not in valid]
    if unknown:
      raise errors.ConfigError(f'unknown {name}(s) {unknown}; valid: {valid}.')
  seeds = seeds if seeds is not None else (3 if mode == 'full' else 1)
  if seeds < 1:
    raise errors.ConfigError(f'--seeds must be >= 1; got {seeds}.')
  return Plan(mode, out_dir, results_dir or out_dir, datasets, models,
              tuple(range(seeds)), notes)


def run_config(dataset: str, mode: str, variant: str = 'cyan_cov',
               seed: int = 0):
  """The `configs/cyan.py` config of one run in `mode`."""
  if dataset in USER_FILES:  # the real-data defaults on the user's file
    path, fmt, graph = USER_FILES[dataset]
    config = config_loading.load_config(
        'configs/cyan.py:real', data__path=path, data__format=fmt,
        data__graph=graph)
  else:
    config = config_loading.load_config(f'configs/cyan.py:{dataset}')
  config.model.variant = variant
  config.seed = seed
  if dataset in CHRONOLOGICAL:
    config.data.split = 'chronological'
  if dataset == 'twitter':
    config.data.max_events = TWITTER_MAX_EVENTS
  if mode == 'full':
    config.train.update(FULL_BUDGET.get(dataset, {}))
  elif mode == 'quick':
    if dataset in GENERATED:
      config.data.num_cascades = 2000
    else:
      config.data.subsample = 1500
    config.train.num_epochs = 2
    config.train.patience = 1
    config.batching.bucket_growth = 4.0  # fewer shapes to compile
  else:  # tiny: the 'tiny' variant's model and training on a sliver of data
    tiny = config_loading.load_config('configs/cyan.py:tiny')
    if dataset in GENERATED:
      config.data.num_cascades = 60
    else:
      config.data.subsample = 30
    for block in ('batching', 'model', 'train', 'analysis'):
      config[block] = tiny[block]
    config.model.variant = variant
    config.log_every = tiny.log_every
    config.train.num_epochs = 1
  return config


def run_dir(plan: Plan, dataset: str, model: str, seed: int | None) -> str:
  """The workdir of one run; `seed` None for the (deterministic) baselines."""
  name = model if seed is None else f'{model}-seed{seed}'
  return os.path.join(plan.out_dir, 'runs', dataset, name)
