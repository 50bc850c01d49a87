"""What the RCBM reproduction runs: experiments, models, modes and settings.

`Settings` holds every size and solver setting of a mode (`FULL`, `QUICK`,
`TINY`); its JSON form keys the caches under `--out_dir`
(`cyan_rcbm.experiments.rcbm.cache`), so changing a setting recomputes what
depends on it. `Plan` is one invocation: mode, folders, experiments.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

# In run order (the runtime study runs model by model, RCBM first).
MODELS = ('rcbm_fs', 'rcbm_ls', 'rcbm_ls_paper', 'sc', 'ssm', 'cae')
LABELS = {'rcbm_fs': 'RCBM-FS', 'rcbm_ls': 'RCBM-LS',
          'rcbm_ls_paper': 'RCBM-LS (paper)', 'cae': 'cAE', 'sc': 'SC',
          'ssm': 'SSM'}
# The step rule of each RCBM model (`cbm.SolverConfig.step`).
RCBM_STEPS = {'rcbm_fs': 'fixed', 'rcbm_ls': 'line_search',
              'rcbm_ls_paper': 'line_search_paper'}
# In run order: the long runtime study last (K selection feeds the others).
EXPERIMENTS = ('kselect', 'composition', 'anomalies', 'forecast', 'fsls',
               'runtime')
ROW_KEYS = ('dataset', 'model', 'n_train', 'rep', 'seconds',
            'warmup_seconds', 'perplexity', 'log_perplexity',
            'median_neg_log_prob', 'nll_per_sample', 'nll_per_entry',
            'recon_rel_error', 'num_params', 'iterations', 'converged',
            'note')


@dataclasses.dataclass(frozen=True)
class Settings:
  """Every size and solver setting of one mode (see `settings_for`)."""
  real: str                       # 'higgs' or 'planted' (tiny)
  runtime_datasets: tuple[str, ...]
  n_grid: dict[str, tuple[int, ...]]
  reps: int
  reps_large: int                 # repetitions for n >= large_n
  large_n: int
  num_test: int                   # held-out samples of the runtime study
  num_filters: int                # K per level (runtime, anomalies)
  filter_length: int              # Tw
  pool: int                       # c
  lam: float                      # sigma^2 / beta of Eq. 6 (fixed)
  max_iters: int                  # outer iterations per level
  runtime_max_iters: int          # ... in the runtime study
  tol: float
  inner_max_iters: int
  num_restarts: int
  infer_max_iters: int
  infer_tol: float
  cae_max_n: int
  cae_max_epochs: int
  cae_budget_s: float
  sc_max_iters: int
  ssm_max_iters: int
  fsls_n: int
  fsls_max_iters: int
  fsls_tol: float
  kselect_n: int
  kselect_ks: tuple[int, ...]
  kselect_max_iters: int
  knee_eps: float
  composition_n: int              # 0: every sample
  anomaly_n_train: int
  anomaly_counts: tuple[int, int, int]  # normal, foreign, shuffled
  forecast_train_fraction: float
  forecast_max_samples: int       # 0: every sample
  higgs_min_events: int           # the standard set (5,641 targets at 10)
  higgs_runtime_min_events: int   # the runtime set (more, smaller targets)
  planted: tuple[tuple[str, Any], ...]  # make_planted keyword arguments

  def planted_kwargs(self) -> dict[str, Any]:
    return dict(self.planted)


_PLANTED = (('num_features', 7), ('length', 60), ('num_filters', 5),
            ('filter_length', 7), ('noise', 0.05), ('density', 0.02))

FULL = Settings(
    real='higgs', runtime_datasets=('higgs', 'planted'),
    n_grid={'higgs': (100, 300, 1000, 3000, 10000),
            'planted': (100, 300, 1000, 3000, 10000)},
    reps=3, reps_large=3, large_n=3000, num_test=1000, num_filters=10,
    filter_length=7, pool=2, lam=0.3, max_iters=60, runtime_max_iters=20,
    tol=1e-3,
    inner_max_iters=20, num_restarts=1, infer_max_iters=200, infer_tol=1e-4,
    cae_max_n=300, cae_max_epochs=20, cae_budget_s=120.0, sc_max_iters=100,
    ssm_max_iters=50, fsls_n=1000, fsls_max_iters=100, fsls_tol=1e-5,
    kselect_n=1000, kselect_ks=tuple(range(1, 11)), kselect_max_iters=40,
    knee_eps=0.05, composition_n=0, anomaly_n_train=2000,
    anomaly_counts=(900, 50, 50), forecast_train_fraction=0.6,
    forecast_max_samples=0, higgs_min_events=10, higgs_runtime_min_events=3,
    planted=_PLANTED)

QUICK = dataclasses.replace(
    FULL, n_grid={'higgs': (100, 300), 'planted': (100, 300)}, reps=1,
    num_test=300, max_iters=30, runtime_max_iters=20, cae_max_n=300,
    cae_max_epochs=5,
    cae_budget_s=30.0, sc_max_iters=50, ssm_max_iters=20, fsls_n=300,
    fsls_max_iters=60, kselect_n=500, kselect_ks=(2, 4, 6, 8, 10),
    kselect_max_iters=20, composition_n=1500, anomaly_n_train=500,
    anomaly_counts=(270, 15, 15), forecast_max_samples=2500)

# Tiny: one sample count (24) wherever possible, so that compiled solvers are
# shared across experiments (compilation dominates at this size).
TINY = dataclasses.replace(
    FULL, real='planted', runtime_datasets=('planted',),
    n_grid={'planted': (24,)}, reps=1, large_n=48, num_test=24,
    num_filters=3, filter_length=3, max_iters=4, runtime_max_iters=4,
    tol=1e-3, inner_max_iters=10,
    infer_max_iters=20, cae_max_n=24, cae_max_epochs=2, cae_budget_s=10.0,
    sc_max_iters=4, ssm_max_iters=3, fsls_n=24, fsls_max_iters=5,
    kselect_n=24, kselect_ks=(2, 3), kselect_max_iters=3, composition_n=24,
    anomaly_n_train=24, anomaly_counts=(16, 4, 4),
    forecast_train_fraction=0.6, forecast_max_samples=0,
    planted=(('num_features', 3), ('length', 16), ('num_filters', 3),
             ('filter_length', 3), ('noise', 0.05), ('density', 0.05)))
TINY_REAL_SAMPLES = 40


def settings_for(mode: str) -> Settings:
  """The `Settings` of a mode ('full', 'quick' or 'tiny')."""
  return {'full': FULL, 'quick': QUICK, 'tiny': TINY}[mode]


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to run: mode, folders, experiments, notes file."""
  mode: str
  out_dir: str
  results_dir: str
  experiments: tuple[str, ...]
  notes: str | None = None
  # Runtime study: cells with more training samples than this are not run
  # (reported as skipped); 0 = no limit. Not part of the cache key.
  runtime_max_n: int = 0
  # Runtime study: the models run (default all); the others are reported
  # as skipped. Not part of the cache key.
  runtime_models: tuple[str, ...] = MODELS
  # results.json of an earlier run whose kselect, composition, anomalies
  # and forecast results are reported when those experiments are not run
  # here (only if that run's settings for them are the same).
  carry_from: str | None = None
  # Runtime study: run no cell, report the cached ones (the rest are listed
  # as not run for time). Not part of the cache key.
  report_only: bool = False

  @property
  def settings(self) -> Settings:
    return settings_for(self.mode)


def make_plan(out_dir: str, mode: str = 'full', results_dir: str | None = None,
              experiments=None, notes: str | None = None,
              runtime_max_n: int = 0, runtime_models=None,
              carry_from: str | None = None,
              report_only: bool = False) -> Plan:
  """Checks the mode and experiments; results go to `out_dir` by default."""
  if mode not in ('full', 'quick', 'tiny'):
    raise ValueError(f'mode must be full, quick or tiny, got {mode!r}')
  experiments = tuple(experiments or EXPERIMENTS)
  unknown = set(experiments) - set(EXPERIMENTS)
  if unknown:
    raise ValueError(f'unknown experiments {sorted(unknown)}; expected some '
                     f'of {EXPERIMENTS}')
  runtime_models = tuple(runtime_models or MODELS)
  unknown = set(runtime_models) - set(MODELS)
  if unknown:
    raise ValueError(f'unknown runtime models {sorted(unknown)}; expected '
                     f'some of {MODELS}')
  return Plan(mode=mode, out_dir=out_dir, results_dir=results_dir or out_dir,
              experiments=experiments, notes=notes,
              runtime_max_n=int(runtime_max_n or 0),
              runtime_models=runtime_models, carry_from=carry_from,
              report_only=bool(report_only))


def log(msg: str) -> None:
  """One progress line, time-stamped."""
  print(f'[reproduce_rcbm {time.strftime("%H:%M:%S")}] {msg}', flush=True)
