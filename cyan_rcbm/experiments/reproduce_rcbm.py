"""Reproduces the RCBM paper's "Experimental Results" on the data we have.

The paper's Twitter-keyword and Yelp sets are not available; we use the
Higgs-Twitter dynamics (`cyan_rcbm.data.higgs`, the paper's seven Twitter
features per target user, 10-minute bins) and planted synthetic data from
the model itself (`cyan_rcbm.data.planted`, SPEC B3), with known filters.

Experiments (one key each in results.json):
* `runtime` (Figs. 5-8): runtime and held-out perplexity against the number
  of training samples for RCBM-FS, RCBM-LS, cAE, SC and SSM, repeated;
  `fsls`: the objective of RCBM-FS and RCBM-LS against wall time at one n
  (the "4-6x faster at equal quality" claim, measured directly).
* `kselect` (Figs. 9-10): F(m) (Eq. 11) of one RCBM with K = 10 per level
  against BIC over K (one CBM per K and level).
* `composition` (Figs. 11-14): a 2-level RCBM on the Higgs dynamics with K
  from the knee, its filters ranked by activation, drawn as PNGs.
* `anomalies` (Tables 2-3): the lowest-probability Higgs samples with their
  dynamics, compared with a frequency ranking; ROC-AUC on planted anomalies.
* `forecast` (Tables 5-6): VAR (linear) and SVR on raw / H1 / H2 / H1+H2 /
  H1^2 features, strict time split.

    # full mode (about 2 hours on 2 shared cores), published under docs/:
    python scripts/reproduce_rcbm.py --out_dir=runs/reproduce_rcbm \
        --results_dir=docs/rcbm_results --notes=docs/rcbm_results/notes.md
    # quick mode (under 10 minutes) and the test-suite mode (seconds):
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_quick --quick
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_tiny --tiny

A re-run with the same --out_dir skips every finished cell / experiment
(cached under --out_dir) and continues the rest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.data import planted as planted_lib
from cyan_rcbm.rcbm import applications
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import plots
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import select_k
from cyan_rcbm.rcbm.baselines import cae
from cyan_rcbm.rcbm.baselines import sc
from cyan_rcbm.rcbm.baselines import ssm

MODELS = ('rcbm_fs', 'rcbm_ls', 'cae', 'sc', 'ssm')
LABELS = {'rcbm_fs': 'RCBM-FS', 'rcbm_ls': 'RCBM-LS', 'cae': 'cAE',
          'sc': 'SC', 'ssm': 'SSM'}
# In run order: the long runtime study last (K selection feeds the others).
EXPERIMENTS = ('kselect', 'composition', 'anomalies', 'forecast', 'fsls',
               'runtime')
ROW_KEYS = ('dataset', 'model', 'n_train', 'rep', 'seconds', 'perplexity',
            'log_perplexity', 'median_neg_log_prob', 'recon_rel_error',
            'num_params', 'iterations', 'converged', 'note')



# ---------------------------------------------------------------------------
# Settings per mode.


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
            'planted': (100, 300, 1000, 3000)},
    reps=3, reps_large=1, large_n=10000, num_test=1000, num_filters=10,
    filter_length=7, pool=2, lam=0.3, max_iters=60, tol=1e-3,
    inner_max_iters=20, num_restarts=1, infer_max_iters=200, infer_tol=1e-4,
    cae_max_n=1000, cae_max_epochs=20, cae_budget_s=120.0, sc_max_iters=100,
    ssm_max_iters=50, fsls_n=1000, fsls_max_iters=300, fsls_tol=1e-5,
    kselect_n=1000, kselect_ks=tuple(range(1, 11)), kselect_max_iters=40,
    knee_eps=0.05, composition_n=0, anomaly_n_train=2000,
    anomaly_counts=(900, 50, 50), forecast_train_fraction=0.6,
    forecast_max_samples=0, higgs_min_events=10, higgs_runtime_min_events=3,
    planted=_PLANTED)

QUICK = dataclasses.replace(
    FULL, n_grid={'higgs': (100, 300), 'planted': (100, 300)}, reps=1,
    num_test=300, max_iters=30, cae_max_n=300, cae_max_epochs=5,
    cae_budget_s=30.0, sc_max_iters=50, ssm_max_iters=20, fsls_n=300,
    fsls_max_iters=60, kselect_n=500, kselect_ks=(2, 4, 6, 8, 10),
    kselect_max_iters=20, composition_n=1500, anomaly_n_train=500,
    anomaly_counts=(270, 15, 15), forecast_max_samples=2500)

# Tiny: one sample count (24) wherever possible, so that compiled solvers are
# shared across experiments (compilation dominates at this size).
TINY = dataclasses.replace(
    FULL, real='planted', runtime_datasets=('planted',),
    n_grid={'planted': (24,)}, reps=1, large_n=48, num_test=24,
    num_filters=3, filter_length=3, max_iters=4, tol=1e-3, inner_max_iters=10,
    infer_max_iters=20, cae_max_n=24, cae_max_epochs=2, cae_budget_s=10.0,
    sc_max_iters=4, ssm_max_iters=3, fsls_n=24, fsls_max_iters=5,
    kselect_n=24, kselect_ks=(2, 3), kselect_max_iters=3, composition_n=24,
    anomaly_n_train=24, anomaly_counts=(16, 4, 4),
    forecast_train_fraction=0.6, forecast_max_samples=0,
    planted=(('num_features', 3), ('length', 16), ('num_filters', 3),
             ('filter_length', 3), ('noise', 0.05), ('density', 0.05)))
TINY_REAL_SAMPLES = 40


def settings_for(mode: str) -> Settings:
  return {'full': FULL, 'quick': QUICK, 'tiny': TINY}[mode]


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to run: mode, folders, experiments, notes file."""
  mode: str
  out_dir: str
  results_dir: str
  experiments: tuple[str, ...]
  notes: str | None = None

  @property
  def settings(self) -> Settings:
    return settings_for(self.mode)


def make_plan(out_dir: str, mode: str = 'full', results_dir: str | None = None,
              experiments=None, notes: str | None = None) -> Plan:
  if mode not in ('full', 'quick', 'tiny'):
    raise ValueError(f'mode must be full, quick or tiny, got {mode!r}')
  experiments = tuple(experiments or EXPERIMENTS)
  unknown = set(experiments) - set(EXPERIMENTS)
  if unknown:
    raise ValueError(f'unknown experiments {sorted(unknown)}; expected some '
                     f'of {EXPERIMENTS}')
  return Plan(mode=mode, out_dir=out_dir, results_dir=results_dir or out_dir,
              experiments=experiments, notes=notes)


def _log(msg: str) -> None:
  print(f'[reproduce_rcbm {time.strftime("%H:%M:%S")}] {msg}', flush=True)


# ---------------------------------------------------------------------------
# Data.


@dataclasses.dataclass
class Samples:
  """A sample set with what the experiments need beside x.

  Attributes:
    name: 'higgs' or 'planted'.
    x: [n, D, T] float64, raw units.
    ids, feature_names: as in `Dynamics`.
    start: window start times (forecasting split).
    volume: the frequency ranking (Higgs: the target's lines in the file).
    bin_seconds: bin width in the unit of `start`.
    count_rows: rows that count events (they sum to a bin's events).
    cut: forecast bin (the Higgs peak bin + 1).
    scale_mode: 'feature' (per-feature std) or 'none'.
    extra: per-sample side arrays for the tables.
  """
  name: str
  x: np.ndarray
  ids: list[str]
  feature_names: list[str]
  start: np.ndarray
  volume: np.ndarray
  bin_seconds: float
  count_rows: tuple[int, ...]
  cut: int
  scale_mode: str
  extra: dict[str, np.ndarray]


def _higgs(plan: Plan, min_events: int) -> Samples:
  """Higgs target samples (cached as .npz under out_dir/data)."""
  path = os.path.join(plan.out_dir, 'data', f'higgs_target_min{min_events}.npz')
  if not os.path.exists(path):
    from cyan_rcbm.data import higgs  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    s = higgs.higgs_samples(mode='target', min_events=min_events)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp.npz'
    np.savez(tmp, x=s.dynamics.x, ids=np.array(s.dynamics.ids),
             feature_names=np.array(s.dynamics.feature_names),
             window_start=s.window_start, window_events=s.window_events,
             later_events=s.later_events, total_lines=s.total_lines,
             bin_seconds=s.bin_seconds)
    os.replace(tmp, path)
    _log(f'built {path}: {s.dynamics.x.shape} in '
         f'{time.perf_counter() - t0:.1f}s')
  with np.load(path) as z:
    return Samples(
        name='higgs', x=z['x'].astype(np.float64), ids=list(z['ids']),
        feature_names=list(z['feature_names']), start=z['window_start'],
        volume=z['total_lines'].astype(np.float64),
        bin_seconds=float(z['bin_seconds']), count_rows=(0, 1, 2, 3, 4),
        cut=11, scale_mode='feature',
        extra={k: z[k] for k in ('window_events', 'later_events',
                                 'total_lines')})


def _planted(settings: Settings, n: int, seed: int) -> Samples:
  dyn, _, _ = planted_lib.make_planted(n, seed=seed,
                                       **settings.planted_kwargs())
  x = dyn.x.astype(np.float64)
  t = x.shape[2]
  return Samples(
      name='planted', x=x, ids=list(dyn.ids),
      feature_names=list(dyn.feature_names),
      start=np.arange(n, dtype=np.float64) * t, volume=x.sum(axis=(1, 2)),
      bin_seconds=1.0, count_rows=tuple(range(x.shape[1])), cut=t // 3,
      scale_mode='none', extra={})


def _real(plan: Plan) -> Samples:
  s = plan.settings
  if s.real == 'higgs':
    return _higgs(plan, s.higgs_min_events)
  return _planted(s, TINY_REAL_SAMPLES, seed=5)


def data_scale(x_NxDxT: np.ndarray, mode: str) -> np.ndarray:
  """[D] divisors: per-feature std ('feature') or ones ('none')."""
  d = x_NxDxT.shape[1]
  if mode == 'none':
    return np.ones(d)
  s = np.transpose(x_NxDxT, (1, 0, 2)).reshape(d, -1).std(axis=1)
  return np.where(s > 0, s, 1.0)


def _subset(n_total: int, n: int, seed: int) -> np.ndarray:
  if n >= n_total:
    return np.arange(n_total)
  return np.sort(np.random.default_rng([seed, 17]).choice(n_total, n,
                                                          replace=False))


# ---------------------------------------------------------------------------
# Models of the runtime / perplexity study (all on scaled data).


def rcbm_num_params(specs, num_features) -> int:
  """`sum_l (K_l D_l Tw_l + 2)` (filters, sigma, beta per level)."""
  total, d = 0, num_features
  for spec in specs:
    total += select_k.num_params(spec.num_filters, d, spec.filter_length)
    d = spec.num_filters
  return total


def _specs(settings: Settings, k1=None, k2=None, levels=2):
  k1 = k1 or settings.num_filters
  k2 = k2 or settings.num_filters
  if levels == 1:
    return [rcbm_lib.LevelSpec(k1, settings.filter_length, 1)]
  return [rcbm_lib.LevelSpec(k1, settings.filter_length, settings.pool),
          rcbm_lib.LevelSpec(k2, settings.filter_length, 1)]


def _solver(settings: Settings, step='fixed') -> cbm.SolverConfig:
  return cbm.SolverConfig(step=step, lam=settings.lam,
                          inner_max_iters=settings.inner_max_iters)


def _inference(settings: Settings) -> rcbm_lib.InferenceSettings:
  return rcbm_lib.InferenceSettings(max_iters=settings.infer_max_iters,
                                    tol=settings.infer_tol, batch_size=2000)


def fit_rcbm(settings: Settings, x_scaled: np.ndarray, *, step='fixed',
             seed=0, specs=None, scale=None, feature_names=None,
             max_iters=None, num_restarts=None):
  """A 2-level RCBM (or `specs`) on scaled data; returns (model, fits)."""
  specs = specs or _specs(settings)
  d = x_scaled.shape[1]
  return rcbm_lib.fit_rcbm(
      x_scaled.astype(np.float32), specs, cfg=_solver(settings, step),
      feature_names=feature_names or [f'f{j}' for j in range(d)],
      scale=scale, inference=_inference(settings),
      fit_kwargs=dict(max_iters=max_iters or settings.max_iters,
                      tol=settings.tol, min_iters=3,
                      num_restarts=num_restarts or settings.num_restarts,
                      restart_iters=10, batch_size=2000, seed=seed))


def _fit_rcbm_cell(settings, x_train, x_test, seed, step, quick=False):
  t0 = time.perf_counter()
  model, fits = fit_rcbm(settings, x_train, step=step, seed=seed,
                         max_iters=1 if quick else None, num_restarts=1
                         if quick else None)
  seconds = time.perf_counter() - t0
  acts = rcbm_lib.infer(model, x_test.astype(np.float32))
  log_p = likelihood.joint_from_activations(model, acts)
  return dict(
      seconds=seconds, log_p=log_p,
      recon_rel_error=float(np.sum(acts[0].sq_err) / np.sum(x_test ** 2)),
      num_params=rcbm_num_params(_specs(settings), x_train.shape[1]),
      iterations=[int(f.state.iteration) for f in fits],
      converged=all(bool(f.converged) for f in fits), note='')


def _fit_sc_cell(settings, x_train, x_test, seed, quick=False):
  _, d, t = x_train.shape
  m = sc.matched_num_atoms(rcbm_num_params(_specs(settings), d), d, t)
  t0 = time.perf_counter()
  fit = sc.fit_sc(x_train.astype(np.float32), m,
                  cfg=sc.SCConfig(lam=settings.lam,
                                  inner_max_iters=settings.inner_max_iters),
                  max_iters=1 if quick else settings.sc_max_iters,
                  tol=settings.tol, seed=seed,
                  infer_max_iters=settings.infer_max_iters,
                  infer_tol=settings.infer_tol)
  seconds = time.perf_counter() - t0
  _, _, sq, l1 = sc.infer_codes(fit.model, x_test.astype(np.float32))
  return dict(
      seconds=seconds,
      log_p=likelihood.cbm_log_joint(sq, l1, fit.model.sigma, fit.model.beta),
      recon_rel_error=float(np.sum(sq) / np.sum(x_test ** 2)),
      num_params=fit.model.num_params, iterations=[len(fit.history)],
      converged=fit.converged, note=f'M={m} atoms')


def _fit_ssm_cell(settings, x_train, x_test, seed, quick=False):
  d = x_train.shape[1]
  k = ssm.matched_state_dim(rcbm_num_params(_specs(settings), d), d)
  t0 = time.perf_counter()
  fit = ssm.fit_ssm(x_train.astype(np.float32), k,
                    max_iters=1 if quick else settings.ssm_max_iters,
                    tol=1e-4, seed=seed)
  seconds = time.perf_counter() - t0
  return dict(seconds=seconds,
              log_p=ssm.log_prob(fit.params, x_test.astype(np.float32)),
              recon_rel_error=None, num_params=fit.num_params,
              iterations=[len(fit.history)], converged=fit.converged,
              note=f'k={k} latent dims')


def _fit_cae_cell(settings, x_train, x_test, seed, quick=False):
  cfg = cae.CAEConfig(
      num_maps=settings.num_filters, num_levels=2,
      filter_length=settings.filter_length, pool=settings.pool,
      lam=settings.lam, max_epochs=1 if quick else settings.cae_max_epochs,
      min_epochs=1 if quick else 3, tol=settings.tol,
      time_budget_s=settings.cae_budget_s, seed=seed)
  fit = cae.fit_cae(x_train.astype(np.float32), cfg)
  x_test = x_test.astype(np.float32)
  xhat = cae.reconstruct(fit.model, x_test)
  note = (f'epochs {fit.epochs}; stopped by the {settings.cae_budget_s:g}s '
          'budget' if fit.budget_exhausted else f'epochs {fit.epochs}')
  return dict(seconds=fit.seconds, log_p=cae.log_prob(fit.model, x_test),
              recon_rel_error=float(np.sum((x_test - xhat) ** 2)
                                    / np.sum(x_test ** 2)),
              num_params=fit.model.num_params, iterations=fit.epochs,
              converged=all(fit.converged) and not fit.budget_exhausted,
              note=note)


CELL_FITS: dict[str, Callable[..., dict[str, Any]]] = {
    'rcbm_fs': lambda s, a, b, seed, quick=False: _fit_rcbm_cell(
        s, a, b, seed, 'fixed', quick),
    'rcbm_ls': lambda s, a, b, seed, quick=False: _fit_rcbm_cell(
        s, a, b, seed, 'line_search', quick),
    'cae': _fit_cae_cell, 'sc': _fit_sc_cell, 'ssm': _fit_ssm_cell}


# ---------------------------------------------------------------------------
# Caching.


def _settings_key(plan: Plan) -> str:
  return json.dumps(dataclasses.asdict(plan.settings), sort_keys=True,
                    default=str)


def _load_cache(plan: Plan, name: str):
  path = os.path.join(plan.out_dir, f'{name}.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    blob = json.load(f)
  if blob.get('settings') != _settings_key(plan):
    _log(f'{path} was made with other settings: ignored')
    return None
  return blob['value']


def _save_cache(plan: Plan, name: str, value) -> None:
  os.makedirs(plan.out_dir, exist_ok=True)
  workdir_lib.dump_json({'settings': _settings_key(plan), 'value': value},
                        os.path.join(plan.out_dir, f'{name}.json'))


# ---------------------------------------------------------------------------
# Runtime and perplexity (Figs. 5-8).


def _runtime_data(plan: Plan, dataset: str):
  """(x scaled [n, D, T], test indices, pool indices) of a runtime set."""
  s = plan.settings
  if dataset == 'higgs':
    data = _higgs(plan, s.higgs_runtime_min_events)
  else:
    data = _planted(s, max(s.n_grid['planted']) + s.num_test, seed=0)
  n = data.x.shape[0]
  perm = np.random.default_rng([3, 11]).permutation(n)
  test, pool = np.sort(perm[:s.num_test]), np.sort(perm[s.num_test:])
  scale = data_scale(data.x[pool], data.scale_mode)
  return data.x / scale[None, :, None], test, pool


def run_runtime(plan: Plan) -> dict[str, Any]:
  s = plan.settings
  rows = _load_cache(plan, 'runtime_rows') or []
  done = {(r['dataset'], r['model'], r['n_train'], r['rep']) for r in rows}
  skipped = []
  for dataset in s.runtime_datasets:
    x, test, pool = _runtime_data(plan, dataset)
    for n in s.n_grid[dataset]:
      if n > pool.size:
        skipped.append({'dataset': dataset, 'n_train': n, 'model': '*',
                        'reason': f'only {pool.size} training samples'})
        continue
      for model in MODELS:
        if model == 'cae' and n > s.cae_max_n:
          skipped.append({'dataset': dataset, 'n_train': n, 'model': model,
                          'reason': f'cAE runs up to n={s.cae_max_n} (time '
                                    'budget; the paper: up to 500)'})
          continue
        reps = s.reps if n < s.large_n else s.reps_large
        todo = [r for r in range(reps) if (dataset, model, n, r) not in done]
        if not todo:
          continue
        fit = CELL_FITS[model]
        # Warm-up on the same shapes: compile time is not training time.
        fit(s, x[pool[_subset(pool.size, n, 99)]], x[test], 99, quick=True)
        for rep in todo:
          train = pool[_subset(pool.size, n, rep)]
          out = fit(s, x[train], x[test], rep)
          log_p = np.asarray(out.pop('log_p'), np.float64)
          nll = float(-np.mean(log_p))
          ppl = likelihood.perplexity_from_log_prob(log_p)
          row = dict(dataset=dataset, model=model, n_train=int(n), rep=rep,
                     perplexity=ppl if math.isfinite(ppl) else None,
                     log_perplexity=nll,
                     median_neg_log_prob=float(-np.median(log_p)), **out)
          rows.append({k: row[k] for k in ROW_KEYS})
          done.add((dataset, model, n, rep))
          _save_cache(plan, 'runtime_rows', rows)
          _log(f'runtime {dataset} {model} n={n} rep={rep}: '
               f'{out["seconds"]:.1f}s, log perplexity {nll:.3f} '
               f'{out["note"]}')
  return {'rows': rows, 'skipped': skipped}


# ---------------------------------------------------------------------------
# RCBM-FS vs RCBM-LS: objective against wall time (level 1, one n).


def run_fsls(plan: Plan) -> dict[str, Any]:
  s = plan.settings
  cached = _load_cache(plan, 'fsls')
  if cached is not None:
    return cached
  out = {}
  for dataset in s.runtime_datasets:
    x, _, pool = _runtime_data(plan, dataset)
    x1 = x[pool[_subset(pool.size, s.fsls_n, 0)]].astype(np.float32)
    traces = {}
    for step in ('fixed', 'line_search'):
      cfg = _solver(s, step)
      kwargs = dict(cfg=cfg, tol=s.fsls_tol, min_iters=3, num_restarts=1,
                    batch_size=2000, seed=0)
      cbm.fit_cbm(x1, s.num_filters, s.filter_length, max_iters=1, **kwargs)
      fit = cbm.fit_cbm(x1, s.num_filters, s.filter_length,
                        max_iters=s.fsls_max_iters, **kwargs)
      traces[step] = {
          'objective': [h['objective'] for h in fit.history],
          'seconds': np.cumsum([h['seconds'] for h in fit.history]).tolist(),
          'converged': bool(fit.converged)}
    best = min(min(t['objective']) for t in traces.values())
    # 'equal quality': the worse of the two final objectives, which both
    # runs reach; then within 5%, 1%, 0.1% of the better one.
    worse = max(t['objective'][-1] for t in traces.values())
    summary = {}
    for rel in ('equal_quality', 0.05, 0.01, 0.001):
      if rel == 'equal_quality':
        target, key = worse, 'equal_quality'
      else:
        target = best * (1 + rel) if best > 0 else best + rel
        key = f'within_{rel:g}'
      reach = {}
      for step, t in traces.items():
        hit = [sec for obj, sec in zip(t['objective'], t['seconds'])
               if obj <= target]
        reach[step] = hit[0] if hit else None
      speedup = (reach['line_search'] / reach['fixed']
                 if reach['fixed'] and reach['line_search'] else None)
      summary[key] = {'objective': target, 'seconds': reach,
                      'ls_over_fs': speedup}
    out[dataset] = {'n': int(x1.shape[0]), 'traces': traces,
                    'best_objective': best, 'time_to_objective': summary,
                    'final_objective': {k: t['objective'][-1]
                                        for k, t in traces.items()}}
    _log(f'fsls {dataset}: {summary}')
  _save_cache(plan, 'fsls', out)
  return out


# ---------------------------------------------------------------------------
# K selection (Figs. 9-10).


def _bic_curve(settings, x_scaled, ks):
  """BIC over K (SPEC B5), one CBM per K; also, as a sensitivity check, BIC
  with a per-entry Gaussian likelihood of the residual (Eq. 1 read entry by
  entry: `sum_i log N(X_i; Xhat_i, s^2 I)`, s^2 the per-entry MLE) with the
  same p."""
  n, d, t = x_scaled.shape
  spec_ll, gauss_ll = {}, {}

  def log_l(k):
    fit = cbm.fit_cbm(x_scaled.astype(np.float32), k, settings.filter_length,
                      cfg=_solver(settings), max_iters=settings.kselect_max_iters,
                      tol=settings.tol, min_iters=3, num_restarts=1,
                      batch_size=2000, seed=0)
    sq = np.asarray(fit.sq_err, np.float64)
    s2 = max(float(sq.sum()) / (n * d * t), 1e-30)
    gauss_ll[k] = float(-0.5 * n * d * t * math.log(2 * math.pi * s2)
                        - sq.sum() / (2 * s2))
    spec_ll[k] = float(np.sum(likelihood.cbm_log_joint(
        sq, fit.l1, float(fit.params.sigma), float(fit.params.beta))))
    return spec_ll[k]

  ks_arr, values = select_k.bic_curve(ks, log_l, d, settings.filter_length, n)
  gauss = [select_k.bic(gauss_ll[int(k)],
                        select_k.num_params(int(k), d, settings.filter_length),
                        n) for k in ks_arr]
  return {'num_filters': ks_arr.tolist(), 'bic': values.tolist(),
          'best': int(ks_arr[int(np.argmax(values))]),
          'log_likelihood': [spec_ll[int(k)] for k in ks_arr],
          'bic_gaussian': gauss,
          'best_gaussian': int(ks_arr[int(np.argmax(gauss))])}


def run_kselect(plan: Plan) -> dict[str, Any]:
  s = plan.settings
  cached = _load_cache(plan, 'kselect')
  if cached is not None:
    return cached
  sets = {s.real: _real(plan)}
  if s.real != 'planted':
    sets['planted'] = _planted(s, s.kselect_n, seed=2)
  kmax = max(s.kselect_ks)
  out = {}
  for name, data in sets.items():
    idx = _subset(data.x.shape[0], s.kselect_n, 1)
    scale = data_scale(data.x[idx], data.scale_mode)
    x = data.x[idx] / scale[None, :, None]
    model, _ = fit_rcbm(s, x, specs=_specs(s, kmax, kmax), scale=scale,
                        feature_names=data.feature_names)
    x_levels = [x, rcbm_lib.max_pool(rcbm_lib.features(model, data.x[idx], 1),
                                     s.pool)]
    entry = {'n': int(idx.size)}
    for number, level in enumerate(model.levels, start=1):
      f_m = select_k.cumulative_activation(level.strength)
      entry[f'level{number}'] = {
          'cumulative_activation': f_m.tolist(),
          'knee': select_k.knee(f_m, s.knee_eps),
          'bic': _bic_curve(s, x_levels[number - 1], s.kselect_ks)}
      _log(f'kselect {name} level {number}: knee '
           f'{entry[f"level{number}"]["knee"]}, BIC best '
           f'{entry[f"level{number}"]["bic"]["best"]} (per-entry Gaussian '
           f'BIC best {entry[f"level{number}"]["bic"]["best_gaussian"]})')
    out[name] = entry
  _save_cache(plan, 'kselect', out)
  return out


# ---------------------------------------------------------------------------
# Compositional structures (Figs. 11-14) and the models reused later.


def _chosen_k(kselect: dict[str, Any] | None, plan: Plan) -> tuple[int, int]:
  """K1, K2 from the knees of F(m) on the real set (Fig. 9's role)."""
  s = plan.settings
  if not kselect or s.real not in kselect:
    return s.num_filters, s.num_filters
  return tuple(max(2, int(kselect[s.real][f'level{i}']['knee']))
               for i in (1, 2))


def _model_path(plan: Plan, name: str) -> str:
  return os.path.join(plan.out_dir, 'models', f'{name}.npz')


def _cached_model(plan: Plan, name: str, train_fn) -> rcbm_lib.RCBM:
  path = _model_path(plan, name)
  key_path = path + '.settings'
  key = _settings_key(plan)
  if os.path.exists(path) and os.path.exists(key_path):
    with open(key_path) as f:
      if f.read() == key:
        return io_lib.load_model(path)
  model = train_fn()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  io_lib.save_model(model, path)
  with open(key_path, 'w') as f:
    f.write(key)
  return model


def _composition_model(plan: Plan, data: Samples, k1: int, k2: int):
  s = plan.settings

  def train():
    idx = _subset(data.x.shape[0], s.composition_n or data.x.shape[0], 4)
    scale = data_scale(data.x[idx], data.scale_mode)
    model, _ = fit_rcbm(s, data.x[idx] / scale[None, :, None],
                        specs=_specs(s, k1, k2), scale=scale,
                        feature_names=data.feature_names,
                        num_restarts=max(s.num_restarts, 3),
                        max_iters=2 * s.max_iters)
    return model

  return _cached_model(plan, f'composition_k{k1}_{k2}', train)


def _top_share_stats(h_NxKxS, values, share=0.1):
  """Per filter: mean of `values` over the samples whose activation of that
  filter is in the top `share`, and over all samples."""
  strength = h_NxKxS.sum(axis=2)
  out = []
  for k in range(strength.shape[1]):
    top = applications.top_k(strength[:, k], max(1, int(share * len(values))))
    out.append(float(np.mean(values[top])))
  return {'top_share': share, 'mean_top': out, 'mean_all': float(np.mean(values))}


def run_composition(plan: Plan, kselect) -> dict[str, Any]:
  s = plan.settings
  data = _real(plan)
  k1, k2 = _chosen_k(kselect, plan)
  model = _composition_model(plan, data, k1, k2)
  os.makedirs(plan.results_dir, exist_ok=True)
  names = list(data.feature_names)
  figures = []
  for number, level in enumerate(model.levels, start=1):
    path = os.path.join(plan.results_dir, f'filters_level{number}.png')
    plots.plot_filters(level.w, names, path,
                       title=f'{data.name}: level {number} filters (Tw='
                             f'{level.filter_length}, ranked by activation)',
                       strength=level.strength)
    figures.append(os.path.basename(path))
    names = [f'L{number}.W{k + 1}' for k in range(level.num_filters)]
  acts = rcbm_lib.infer(model, data.x)
  result = {
      'dataset': data.name, 'n': int(data.x.shape[0]), 'num_filters': [k1, k2],
      'filter_length': s.filter_length, 'pool': s.pool,
      'bin_seconds': data.bin_seconds, 'figures': figures,
      'strength_share': [(lv.strength / max(lv.strength.sum(), 1e-30)).tolist()
                         for lv in model.levels],
      'sigma': [lv.sigma for lv in model.levels],
      'beta': [lv.beta for lv in model.levels],
      'filters': [np.round(lv.w, 4).tolist() for lv in model.levels]}
  if 'later_events' in data.extra:
    for key in ('window_events', 'later_events'):
      values = data.extra[key].astype(np.float64)
      result[f'{key}_by_filter'] = [_top_share_stats(a.h, values)
                                    for a in acts]
  return result


# ---------------------------------------------------------------------------
# Anomalies (Tables 2-3).


def _plot_dynamics(x_list, titles, names, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = min(3, len(x_list))
  rows = math.ceil(len(x_list) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows + 0.6),
                           squeeze=False)
  cmap = plt.get_cmap('tab10')
  for ax, x, title in zip(axes.ravel(), x_list, titles):
    for j in range(x.shape[0]):
      ax.plot(x[j], color=cmap(j % 10), lw=1.2, label=names[j])
    ax.set_yscale('symlog', linthresh=1.0)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes.ravel()[len(x_list):]:
    ax.axis('off')
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=min(len(names), 4),
             fontsize=7, frameon=False)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _spearman(a, b):
  ra = np.argsort(np.argsort(a, kind='stable'), kind='stable')
  rb = np.argsort(np.argsort(b, kind='stable'), kind='stable')
  return float(np.corrcoef(ra, rb)[0, 1])


def run_anomalies(plan: Plan, kselect) -> dict[str, Any]:
  s = plan.settings
  out = {}
  # (a) The real set: lowest-probability samples vs a frequency ranking.
  data = _real(plan)
  k1, k2 = _chosen_k(kselect, plan)
  model = _composition_model(plan, data, k1, k2)
  log_p = likelihood.log_prob(model, data.x)
  score = -log_p
  listing = applications.lowest_probability(log_p, data.ids, 10)
  for item in listing:
    i = item['index']
    item['volume'] = float(data.volume[i])
    item['feature_totals'] = {n: float(v) for n, v in
                              zip(data.feature_names, data.x[i].sum(axis=1))}
    item['feature_peaks'] = {n: float(v) for n, v in
                             zip(data.feature_names, data.x[i].max(axis=1))}
    for key, values in data.extra.items():
      item[key] = int(values[i])
  k = min(100, len(score) // 2)
  window_volume = applications.volume_scores(data.x, data.count_rows)
  real = {
      'dataset': data.name, 'n': int(len(score)), 'lowest_probability': listing,
      'top_k': k,
      'overlap_top_k_with_frequency': applications.overlap_at_k(
          score, data.volume, k),
      'overlap_top_k_with_window_volume': applications.overlap_at_k(
          score, window_volume, k),
      'spearman_score_vs_frequency': _spearman(score, data.volume),
      'spearman_score_vs_window_volume': _spearman(score, window_volume)}
  os.makedirs(plan.results_dir, exist_ok=True)
  fig = os.path.join(plan.results_dir, f'anomalies_{data.name}.png')
  _plot_dynamics([data.x[it['index']] for it in listing[:6]],
                 [f'#{it["rank"]} id {it["id"]}  -logP={it["neg_log_prob"]:.1f}'
                  for it in listing[:6]], data.feature_names, fig)
  real['figure'] = os.path.basename(fig)
  out['real'] = real
  _log(f'anomalies {data.name}: top-{k} overlap with frequency '
       f'{real["overlap_top_k_with_frequency"]}')

  # (b) Planted anomalies: ROC-AUC of each score.
  cached = _load_cache(plan, 'anomalies_planted')
  if cached is None:
    cached = _planted_anomalies(plan)
    _save_cache(plan, 'anomalies_planted', cached)
  out['planted'] = cached
  return out


def _planted_anomalies(plan: Plan) -> dict[str, Any]:
  s = plan.settings
  kw = s.planted_kwargs()
  seed = 1
  train = _planted(s, s.anomaly_n_train, seed=seed).x
  test = planted_lib.make_planted_anomalies(*s.anomaly_counts, seed=seed, **kw)
  x_test = test.dynamics.x.astype(np.float64)
  d, t = train.shape[1:]
  model, _ = fit_rcbm(s, train, feature_names=[f'f{j}' for j in range(d)])
  acts = rcbm_lib.infer(model, x_test)
  level1 = model.levels[0]
  p = rcbm_num_params(_specs(s), d)
  sc_fit = sc.fit_sc(train.astype(np.float32), sc.matched_num_atoms(p, d, t),
                     cfg=sc.SCConfig(lam=s.lam,
                                     inner_max_iters=s.inner_max_iters),
                     max_iters=s.sc_max_iters, tol=s.tol, seed=0)
  ssm_fit = ssm.fit_ssm(train.astype(np.float32), ssm.matched_state_dim(p, d),
                        max_iters=s.ssm_max_iters, seed=0)
  scores = {
      'rcbm': -likelihood.joint_from_activations(model, acts),
      'cbm_level1': -likelihood.cbm_log_joint(acts[0].sq_err, acts[0].l1,
                                              level1.sigma, level1.beta),
      'rcbm_error_only': -likelihood.log_p_x_given_h(acts[0].sq_err,
                                                     level1.sigma),
      'sc': -sc.log_prob(sc_fit.model, x_test.astype(np.float32)),
      'ssm': -ssm.log_prob(ssm_fit.params, x_test.astype(np.float32)),
      'volume': applications.volume_scores(x_test),
      'peak': x_test.max(axis=(1, 2))}
  labels = test.labels
  table = {}
  for name, score in scores.items():
    entry = {'all': applications.roc_auc(score, (labels > 0).astype(int))}
    for kind, label in (('foreign_filters', planted_lib.FOREIGN_FILTERS),
                        ('shuffled_rows', planted_lib.SHUFFLED_ROWS)):
      keep = (labels == 0) | (labels == label)
      entry[kind] = applications.roc_auc(score[keep],
                                         (labels[keep] == label).astype(int))
    table[name] = entry
  _log(f'anomalies planted AUC: '
       f'{ {k: round(v["all"], 3) for k, v in table.items()} }')
  return {'n_train': int(train.shape[0]),
          'counts': dict(zip(('normal', 'foreign_filters', 'shuffled_rows'),
                             map(int, s.anomaly_counts))),
          'auc': table}


# ---------------------------------------------------------------------------
# Forecasting (Tables 5-6).


def run_forecast(plan: Plan, kselect) -> dict[str, Any]:
  s = plan.settings
  cached = _load_cache(plan, 'forecast')
  if cached is not None:
    return cached
  data = _real(plan)
  idx = _subset(data.x.shape[0], s.forecast_max_samples or data.x.shape[0], 6)
  task = applications.make_forecast_task(
      data.x[idx], data.start[idx], cut=data.cut, count_rows=data.count_rows,
      bin_seconds=data.bin_seconds,
      train_fraction=s.forecast_train_fraction)
  k1, k2 = _chosen_k(kselect, plan)
  x_train = task.x_full[task.train]
  scale = data_scale(x_train, data.scale_mode)
  xs = x_train / scale[None, :, None]
  model2, _ = fit_rcbm(s, xs, specs=_specs(s, k1, k2), scale=scale,
                       feature_names=data.feature_names)
  model1, _ = fit_rcbm(s, xs, specs=_specs(s, 2 * k1, levels=1), scale=scale,
                       feature_names=data.feature_names)
  feats = applications.feature_sets(model2, model1, task.x_input)
  rows = applications.forecast(feats, task)
  out = {'dataset': data.name, 'n': int(idx.size),
         'num_train': int(task.train.size), 'num_test': int(task.test.size),
         'dropped_at_cutoff': task.dropped, 'cutoff': task.cutoff,
         'cut_bin': data.cut, 'num_filters': [k1, k2],
         'target': ('log1p(events in bins [cut, T)) of the window: the '
                    'activity after the forecast bin'),
         'feature_dims': {k: int(v.shape[1]) for k, v in feats.items()},
         'target_mean': {'train': float(task.target[task.train].mean()),
                         'test': float(task.target[task.test].mean())},
         'rows': rows}
  _save_cache(plan, 'forecast', out)
  _log('forecast: ' + ', '.join(f'{r["model"]}+{r["features"]} '
                                f'{r["rmse"]:.3f}' for r in rows))
  return out


# ---------------------------------------------------------------------------
# Writing results.


def _mean_std(values):
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return None, None
  return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def summarise_runtime(rows):
  """(dataset, model, n) -> mean/std of seconds and log perplexity."""
  groups: dict[tuple, list] = {}
  for r in rows:
    groups.setdefault((r['dataset'], r['model'], r['n_train']), []).append(r)
  out = {}
  for key, rs in sorted(groups.items()):
    sec = _mean_std([r['seconds'] for r in rs])
    nll = _mean_std([r['log_perplexity'] for r in rs])
    med = _mean_std([r['median_neg_log_prob'] for r in rs])
    rec = _mean_std([r['recon_rel_error'] for r in rs])
    out[key] = {'reps': len(rs), 'seconds': sec, 'log_perplexity': nll,
                'median_neg_log_prob': med, 'recon_rel_error': rec,
                'num_params': rs[0]['num_params'],
                'notes': sorted({r['note'] for r in rs if r['note']})}
  return out


def _plot_runtime(summary, dataset, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  keys = (('seconds', 'training time (s)', 'log'),
          ('log_perplexity', 'log perplexity = -mean log P (held out)',
           'symlog'),
          ('median_neg_log_prob', 'median -log P (held out)', 'symlog'))
  for model in MODELS:
    cells = sorted(k for k in summary if k[0] == dataset and k[1] == model)
    if not cells:
      continue
    n = [k[2] for k in cells]
    for ax, (key, _, _) in zip(axes, keys):
      stats = [summary[k][key] for k in cells]
      ax.errorbar(n, [m for m, _ in stats], yerr=[sd or 0 for _, sd in stats],
                  marker='o', ms=3, capsize=2, label=LABELS[model])
  for ax, (_, label, yscale) in zip(axes, keys):
    ax.set(xscale='log', xlabel='training samples n', ylabel=label)
    if yscale == 'symlog':
      ax.set_yscale('symlog', linthresh=10.0)
    else:
      ax.set_yscale(yscale)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'{dataset}: runtime and held-out perplexity (Figs. 5-8)',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _plot_fsls(fsls, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(fsls), figsize=(4.5 * len(fsls), 3.2),
                           squeeze=False)
  for ax, (dataset, entry) in zip(axes[0], fsls.items()):
    for step, label in (('fixed', 'RCBM-FS'), ('line_search', 'RCBM-LS')):
      t = entry['traces'][step]
      ax.plot(t['seconds'], t['objective'], label=label)
    ax.set(xlabel='wall time (s)', ylabel='Eq. 6 objective per sample',
           title=f'{dataset}, n={entry["n"]}, level 1', yscale='log')
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _fmt(x, digits=3):
  if x is None:
    return '-'
  if isinstance(x, tuple):
    m, sd = x
    if m is None:
      return '-'
    return f'{m:.{digits}g}' + (f' ± {sd:.2g}' if sd is not None else '')
  return f'{x:.{digits}g}'


def write_results(plan: Plan, results: dict[str, Any]) -> str:
  """results.json, results.md and the runtime / FS-LS figures."""
  os.makedirs(plan.results_dir, exist_ok=True)
  summary = {}
  if 'runtime' in results:
    summary = summarise_runtime(results['runtime']['rows'])
    for dataset in plan.settings.runtime_datasets:
      path = os.path.join(plan.results_dir, f'runtime_{dataset}.png')
      _plot_runtime(summary, dataset, path)
  if 'fsls' in results:
    _plot_fsls(results['fsls'], os.path.join(plan.results_dir, 'fsls.png'))
  if 'kselect' in results:
    for name, entry in results['kselect'].items():
      for level in (1, 2):
        e = entry[f'level{level}']
        plots.plot_k_selection(
            np.asarray(e['cumulative_activation']), e['knee'],
            os.path.join(plan.results_dir, f'kselect_{name}_level{level}.png'),
            bic=e['bic'], title=f'{name}, level {level}: F(m) vs BIC')
  blob = {'mode': plan.mode, 'settings': dataclasses.asdict(plan.settings),
          **{k: v for k, v in results.items() if k != 'runtime'}}
  if 'runtime' in results:
    blob['runtime'] = results['runtime']['rows']
    blob['runtime_skipped'] = results['runtime']['skipped']
  workdir_lib.dump_json(blob, os.path.join(plan.results_dir, 'results.json'))
  md = _markdown(plan, results, summary)
  path = os.path.join(plan.results_dir, 'results.md')
  with open(path, 'w') as f:
    f.write(md)
  return path


def _claims(plan, results, summary) -> list[tuple[str, str, str]]:
  """(paper's claim, what we measured, verdict)."""
  out = []
  s = plan.settings
  if summary:
    for dataset in s.runtime_datasets:
      ratios, ppl = [], []
      for n in s.n_grid[dataset]:
        fs, ls = summary.get((dataset, 'rcbm_fs', n)), summary.get(
            (dataset, 'rcbm_ls', n))
        if fs and ls and fs['seconds'][0] and ls['seconds'][0]:
          ratios.append((n, ls['seconds'][0] / fs['seconds'][0]))
          ppl.append((n, fs['log_perplexity'][0] - ls['log_perplexity'][0]))
      if ratios:
        text = ', '.join(f'n={n}: {r:.2f}x' for n, r in ratios)
        gaps = ', '.join(f'{g:+.3g}' for _, g in ppl)
        verdict = ('holds' if all(4 <= r <= 6 for _, r in ratios) else
                   'FS faster, less than 4x' if all(r > 1 for _, r in ratios)
                   else 'does not hold')
        out.append((f'RCBM-FS is 4-6x faster than RCBM-LS at equal quality '
                    f'({dataset})',
                    f'LS/FS time {text}; FS-LS log perplexity {gaps}', verdict))
      lowest = []
      for n in s.n_grid[dataset]:
        cells = {m: summary[(dataset, m, n)]['log_perplexity'][0]
                 for m in MODELS if (dataset, m, n) in summary}
        if cells:
          best = min(cells, key=cells.get)
          lowest.append((n, best, cells))
      if lowest:
        text = '; '.join(
            f'n={n}: lowest {LABELS[b]}' + ''.join(
                f', {LABELS[m]} {v - c.get("rcbm_fs", float("nan")):+.3g}'
                for m, v in c.items() if m in ('cae', 'sc', 'ssm'))
            for n, b, c in lowest)
        rcbm_wins = all(b in ('rcbm_fs', 'rcbm_ls') for _, b, _ in lowest)
        out.append((f'RCBM has lower perplexity than cAE, SC and SSM '
                    f'({dataset})',
                    f'{text} (gaps: baseline minus RCBM-FS log perplexity; '
                    '> 0 means RCBM-FS is better)',
                    'holds' if rcbm_wins else 'does not hold everywhere'))
      cae_ratio = [(n, summary[(dataset, 'cae', n)]['seconds'][0]
                    / summary[(dataset, 'rcbm_fs', n)]['seconds'][0])
                   for n in s.n_grid[dataset]
                   if (dataset, 'cae', n) in summary
                   and (dataset, 'rcbm_fs', n) in summary]
      if cae_ratio:
        out.append((f'RCBM-FS is 30-100x faster than cAE ({dataset})',
                    ', '.join(f'n={n}: {r:.2g}x' for n, r in cae_ratio),
                    'holds' if all(r >= 30 for _, r in cae_ratio) else
                    'cAE slower, by less' if all(r > 1 for _, r in cae_ratio)
                    else 'does not hold'))
  if 'fsls' in results:
    for dataset, e in results['fsls'].items():
      w = e['time_to_objective']['equal_quality']
      out.append((f'RCBM-FS reaches equal solution quality 4-6x sooner than '
                  f'RCBM-LS ({dataset}, n={e["n"]}, level 1)',
                  f'time to the worse of the two final objectives '
                  f'({w["objective"]:.4g}): FS '
                  f'{_fmt(w["seconds"]["fixed"])}s, LS '
                  f'{_fmt(w["seconds"]["line_search"])}s (LS/FS '
                  f'{_fmt(w["ls_over_fs"])}); final objectives FS '
                  f'{e["final_objective"]["fixed"]:.4g}, LS '
                  f'{e["final_objective"]["line_search"]:.4g}',
                  'holds' if w['ls_over_fs'] and 4 <= w['ls_over_fs'] <= 6
                  else 'does not hold'))
  if 'kselect' in results:
    for name, e in results['kselect'].items():
      parts, agree = [], True
      for level in (1, 2):
        lv = e[f'level{level}']
        parts.append(f'level {level}: knee {lv["knee"]}, BIC best '
                     f'{lv["bic"]["best"]} (per-entry Gaussian BIC: '
                     f'{lv["bic"]["best_gaussian"]})')
        agree &= abs(lv['knee'] - lv['bic']['best']) <= 1
      out.append((f'the knee of F(m) agrees with BIC ({name})',
                  '; '.join(parts), 'holds' if agree else 'does not hold'))
  if 'forecast' in results:
    rows = [r for r in results['forecast']['rows'] if r['model'] != 'mean']
    for model in applications.REGRESSORS:
      block = {r['features']: r for r in rows if r['model'] == model}
      if 'h1+h2' not in block:
        continue
      text = ', '.join(f'{k} {v["rmse"]:.3f}' for k, v in block.items())
      out.append((f'H1+H2 forecasts better than raw, H1, H2 and H1^2 '
                  f'({model.upper()})', f'test RMSE {text}',
                  'holds' if block['h1+h2']['rank'] == 1 else
                  f'does not hold (H1+H2 ranks {block["h1+h2"]["rank"]})'))
    svr = {r['features']: r['rmse'] for r in rows if r['model'] == 'svr'}
    var = {r['features']: r['rmse'] for r in rows if r['model'] == 'var'}
    if svr and var:
      better = sum(svr[k] < var[k] for k in svr)
      out.append(('SVR forecasts better than VARMA (linear)',
                  f'SVR lower RMSE on {better} of {len(svr)} feature sets',
                  'holds' if better == len(svr) else 'partly'))
      if 'h1+h2' in var and 'raw' in svr:
        out.append(('VAR + H1+H2 beats SVR + Baseline (raw)',
                    f'{var["h1+h2"]:.3f} vs {svr["raw"]:.3f}',
                    'holds' if var['h1+h2'] < svr['raw'] else
                    'does not hold'))
  if 'anomalies' in results:
    real = results['anomalies']['real']
    out.append(('anomalies are not a frequency ranking (paper: 12 of the '
                'top-100 frequent keywords are anomalies)',
                f'{real["overlap_top_k_with_frequency"]} of the top-'
                f'{real["top_k"]} anomalies are in the top-{real["top_k"]} '
                f'by frequency (Spearman {real["spearman_score_vs_frequency"]:.2f})',
                'holds' if real['overlap_top_k_with_frequency']
                < 0.5 * real['top_k'] else 'does not hold'))
    auc = results['anomalies']['planted']['auc']
    out.append(('the probability ranks planted anomalies above a volume '
                'ranking', f'ROC-AUC RCBM {auc["rcbm"]["all"]:.3f} vs volume '
                f'{auc["volume"]["all"]:.3f}',
                'holds' if auc['rcbm']['all'] > auc['volume']['all'] else
                'does not hold'))
  return out


def _markdown(plan: Plan, results, summary) -> str:
  s = plan.settings
  lines = [
      '# RCBM reproduction: results', '',
      f'Mode `{plan.mode}`; written by `scripts/reproduce_rcbm.py` '
      f'({time.strftime("%Y-%m-%d %H:%M")}). The paper\'s Twitter-keyword and '
      'Yelp sets are not available: "higgs" is the Higgs-Twitter activity '
      'file as dynamics (the seven Twitter features per target user, '
      '10-minute bins, peak at bin 10; `cyan_rcbm.data.higgs`) and '
      '"planted" is data drawn from the model itself (SPEC B3) with '
      f'{dict(s.planted)}.', '']
  claims = _claims(plan, results, summary)
  if claims:
    lines += ['## The paper\'s claims and ours', '',
              '| paper | ours | verdict |', '|---|---|---|']
    lines += [f'| {a} | {b} | {c} |' for a, b, c in claims]
    lines.append('')
  if summary:
    lines += _runtime_md(plan, results, summary)
  if 'fsls' in results:
    lines += ['## RCBM-FS vs RCBM-LS against wall time', '',
              f'One level, K={s.num_filters}, Tw={s.filter_length}, '
              f'tol {s.fsls_tol:g}, at most {s.fsls_max_iters} outer '
              'iterations; compile time excluded (a warm-up fit runs first). '
              '![fsls](fsls.png)', '',
              '| set | target | FS (s) | LS (s) | LS / FS |', '|---|---|---|---|---|']
    for dataset, e in results['fsls'].items():
      for key, w in e['time_to_objective'].items():
        label = ('equal quality (worse final)' if key == 'equal_quality'
                 else key.replace('_', ' ') + ' of best')
        lines.append(f'| {dataset} | {label} = {w["objective"]:.4g} | '
                     f'{_fmt(w["seconds"]["fixed"])} | '
                     f'{_fmt(w["seconds"]["line_search"])} | '
                     f'{_fmt(w["ls_over_fs"])} |')
    lines.append('')
  if 'kselect' in results:
    lines += _kselect_md(plan, results['kselect'])
  if 'composition' in results:
    c = results['composition']
    lines += ['## Compositional structures (Figs. 11-14)', '',
              f'A 2-level RCBM on {c["dataset"]} ({c["n"]} samples), K = '
              f'{c["num_filters"]} (the knees of F(m) above), Tw = '
              f'{c["filter_length"]}, pool {c["pool"]}'
              + (f': level-1 filters span '
                 f'{c["filter_length"] * c["bin_seconds"] / 60:g} minutes, '
                 'level-2 filters about '
                 f'{c["filter_length"] * c["pool"] * c["bin_seconds"] / 60:g}'
                 ' minutes' if c['dataset'] == 'higgs' else '')
              + '. Filters are ranked by activation strength (Eq. 10); '
              'the panel titles give each filter\'s share.', '']
    lines += [f'![{f}]({f})' for f in c['figures']] + ['']
    lines.append('Activation shares: ' + '; '.join(
        f'level {i + 1}: ' + ', '.join(f'{100 * v:.0f}%' for v in share)
        for i, share in enumerate(c['strength_share'])))
    lines.append('')
    if 'later_events_by_filter' in c:
      lines += ['Mean activity of the samples in the top 10% of each '
                'filter\'s activation (all samples: window '
                f'{c["window_events_by_filter"][0]["mean_all"]:.1f}, later '
                f'{c["later_events_by_filter"][0]["mean_all"]:.1f} events):',
                '', '| level | filter | window events | later events |',
                '|---|---|---|---|']
      for lvl, (we, le) in enumerate(zip(c['window_events_by_filter'],
                                         c['later_events_by_filter'])):
        for k, (a, b) in enumerate(zip(we['mean_top'], le['mean_top'])):
          lines.append(f'| {lvl + 1} | W{lvl + 1},{k + 1} | {a:.1f} | '
                       f'{b:.1f} |')
      lines.append('')
  if 'anomalies' in results:
    lines += _anomalies_md(results['anomalies'])
  if 'forecast' in results:
    lines += _forecast_md(results['forecast'])
  if plan.notes and os.path.exists(plan.notes):
    with open(plan.notes) as f:
      lines += ['', f.read()]
  return '\n'.join(lines) + '\n'


def _runtime_md(plan, results, summary):
  s = plan.settings
  lines = [
      '## Runtime and held-out perplexity (Figs. 5-8)', '',
      f'Two levels, K = {s.num_filters} per level, Tw = {s.filter_length}, '
      f'pool {s.pool}, lam = {s.lam} (fixed sigma^2/beta, RCBM\'s default), '
      f'{s.num_restarts} initialisation, at most {s.max_iters} outer '
      f'iterations per level, tol {s.tol:g}, {s.inner_max_iters} FISTA '
      f'iterations per h-step. {s.reps} repetitions (different training '
      f'subsets and seeds) for n < {s.large_n}, {s.reps_large} at n >= '
      f'{s.large_n}; mean ± std. Held-out: {s.num_test} fixed samples. '
      'Seconds are training time without compilation (a warm-up fit on the '
      'same shapes runs first) and without the held-out evaluation; the '
      'machine (2 cores) was shared with other jobs, so times are noisy. '
      'Higgs runtime set: targets with >= '
      f'{s.higgs_runtime_min_events} lines (21,557 samples; the standard '
      f'>= {s.higgs_min_events} set has only 5,641), scaled by per-feature '
      'std of the training pool; planted data unscaled.', '',
      'Parameter counts: RCBM `sum_l (K_l D_l Tw_l + 2)`; SC and SSM are '
      'matched to it (the smallest size with at least as many parameters, '
      'as in the paper); cAE has the paper\'s architecture with the same K '
      'and Tw, K^2 maps at level 2, and many more parameters.', '',
      '**What "perplexity" is for each model** (`exp(-mean_i log P(X_i))` '
      'over held-out samples; tables give its log, the mean negative '
      'log-probability, because SSM\'s perplexity overflows):', '',
      '* RCBM (Eq. 12): `log P = sum_l log HalfNormal(e_l; sigma_l) + '
      'log Exp(a_L; beta_L)`, e_l the per-sample error of level l, a_L the '
      'top level\'s per-sample activation, h inferred by the h-step on the '
      'learned filters.',
      '* SC: the same with one level (`log HalfNormal(e) + log Exp(a)`), '
      'codes inferred by the same FISTA.',
      '* cAE: the same form as RCBM over its two levels, with the '
      'encoder\'s codes (no inference) and sigma, beta fitted on the '
      'training set.',
      '* SSM: the exact marginal density `log p(y_1..y_T)` of all D x T '
      'entries (Kalman filter).', '',
      'These are not the same kind of likelihood: RCBM, SC and cAE give the '
      'density of two or three summary statistics of a sample (an error '
      'norm and an activation mass), SSM the density of the D T numbers '
      'themselves. Only RCBM vs SC vs cAE compare like with like (and even '
      'there a 2-level model has one more half-normal term than SC). The '
      'paper compares them the same way and does not discuss it. As a '
      'common yardstick the tables add the relative held-out reconstruction '
      'error `sum ||X - Xhat||^2 / sum ||X||^2` of level 1 (none for SSM).',
      '']
  for dataset in s.runtime_datasets:
    lines += [f'### {dataset}', '', f'![runtime_{dataset}](runtime_{dataset}.png)',
              '', '| model | n | reps | params | seconds | log perplexity | '
              'median -log P | rel. recon. error | notes |',
              '|---|---|---|---|---|---|---|---|---|']
    for model in MODELS:
      for n in s.n_grid[dataset]:
        e = summary.get((dataset, model, n))
        if e is None:
          continue
        lines.append(
            f'| {LABELS[model]} | {n} | {e["reps"]} | {e["num_params"]} | '
            f'{_fmt(e["seconds"])} | {_fmt(e["log_perplexity"], 4)} | '
            f'{_fmt(e["median_neg_log_prob"], 4)} | '
            f'{_fmt(e["recon_rel_error"])} | {"; ".join(e["notes"])} |')
    lines.append('')
  skipped = results['runtime']['skipped']
  if skipped:
    lines += ['Not run: ' + '; '.join(
        f'{k["dataset"]} {k["model"]} n={k["n_train"]} ({k["reason"]})'
        for k in skipped), '']
  return lines


def _kselect_md(plan, kselect):
  s = plan.settings
  lines = ['## Choosing K (Figs. 9-10)', '',
           f'One RCBM with K1 = K2 = {max(s.kselect_ks)} gives F(m) of both '
           f'levels (knee: the smallest m with F(m+1) - F(m) <= '
           f'{s.knee_eps}); BIC = 2 log L - p log n, p = K D Tw + 2, comes '
           f'from one CBM per K in {list(s.kselect_ks)} on that level\'s input '
           f'(level 2: the pooled level-1 activations of the K='
           f'{max(s.kselect_ks)} model), '
           f'at most {s.kselect_max_iters} outer iterations each. BIC uses '
           'SPEC B3\'s sample-level likelihood (half-normal error, '
           'exponential activation); the last column uses a per-entry '
           'Gaussian likelihood of the residual with the same p, as a check '
           'of how much the verdict depends on that choice.', '']
  for name, e in kselect.items():
    lines.append(f'**{name}** ({e["n"]} samples)')
    lines.append('')
    lines.append('| level | F(m), m = 1..K | knee | BIC best K | BIC | '
                 'per-entry Gaussian BIC best K |')
    lines.append('|---|---|---|---|---|---|')
    for level in (1, 2):
      lv = e[f'level{level}']
      f_m = ', '.join(f'{v:.2f}' for v in lv['cumulative_activation'][1:])
      bic = ', '.join(f'{k}: {v:.4g}' for k, v in zip(
          lv['bic']['num_filters'], lv['bic']['bic']))
      lines.append(f'| {level} | {f_m} | {lv["knee"]} | {lv["bic"]["best"]} '
                   f'| {bic} | {lv["bic"]["best_gaussian"]} |')
    lines += ['', ' '.join(f'![kselect_{name}_level{lv}](kselect_{name}_level'
                           f'{lv}.png)' for lv in (1, 2)), '']
  return lines


def _anomalies_md(anom):
  real, planted = anom['real'], anom['planted']
  lines = ['## Anomaly detection (Tables 2-3)', '',
           f'Anomaly score `-log P(X)` (Eq. 12) under the composition model, '
           f'over all {real["n"]} {real["dataset"]} samples (in-sample, as '
           'the paper). The ten lowest-probability samples (ids are Higgs '
           'user ids; "volume" = the target\'s lines in the whole file, the '
           'frequency ranking; totals and peaks per feature over the '
           'window):', '',
           '| rank | id | -log P | volume | window | later | totals '
           '(init, ft-prop, ft-comm, rec-prop, rec-comm, diam, lcc) | peaks |',
           '|---|---|---|---|---|---|---|---|']
  for it in real['lowest_probability']:
    totals = ', '.join(f'{v:g}' for v in it['feature_totals'].values())
    peaks = ', '.join(f'{v:g}' for v in it['feature_peaks'].values())
    lines.append(f'| {it["rank"]} | {it["id"]} | {it["neg_log_prob"]:.1f} | '
                 f'{it["volume"]:g} | {it.get("window_events", "-")} | '
                 f'{it.get("later_events", "-")} | {totals} | {peaks} |')
  lines += ['', f'![anomalies]({real["figure"]})', '',
            f'Top-{real["top_k"]} anomalies vs the top-{real["top_k"]} by '
            f'frequency (lines in the file): '
            f'{real["overlap_top_k_with_frequency"]} in common; vs the top '
            f'by window volume: {real["overlap_top_k_with_window_volume"]}. '
            f'Spearman correlation of the score with frequency '
            f'{real["spearman_score_vs_frequency"]:.2f}, with window volume '
            f'{real["spearman_score_vs_window_volume"]:.2f}.', '',
            f'**Planted anomalies** (training: {planted["n_train"]} normal '
            f'samples; test: {planted["counts"]}; "foreign_filters" = samples '
            'from filters outside the learned set, "shuffled_rows" = normal '
            'samples with permuted feature rows). ROC-AUC:', '',
            '| score | all anomalies | foreign filters | shuffled rows |',
            '|---|---|---|---|']
  for name, e in planted['auc'].items():
    lines.append(f'| {name} | {e["all"]:.3f} | {e["foreign_filters"]:.3f} | '
                 f'{e["shuffled_rows"]:.3f} |')
  lines += ['', 'rcbm: -log P of the 2-level RCBM; cbm_level1: its level 1 '
            'alone; rcbm_error_only: the level-1 error term '
            '`-log P(X | h)` alone (not in the paper: a diagnostic, see the '
            'discussion); sc, ssm: -log P of the baselines; volume: the sum '
            'of the sample; peak: its largest entry.', '']
  return lines


def _forecast_md(fc):
  lines = ['## Forecasting (Tables 5-6)', '',
           f'{fc["dataset"]}: input = each sample up to bin {fc["cut_bin"]} '
           '(the Higgs peak bin is 10: "only the data up to its peak usage '
           f'time is used"), target = {fc["target"]}. Strict time split: '
           f'cutoff = the {100 * 0.6:.0f}% quantile of window ends; training '
           'samples ended (input and target) by the cutoff, test samples are '
           f'forecast after it ({fc["num_train"]} train, {fc["num_test"]} '
           f'test, {fc["dropped_at_cutoff"]} spanning the cutoff dropped). '
           f'RCBMs (K = {fc["num_filters"]}, and one level with '
           f'{2 * fc["num_filters"][0]} filters for H1^2) and every '
           'hyper-parameter are fitted on the training split only. Feature '
           f'sizes: {fc["feature_dims"]}. Mean target: train '
           f'{fc["target_mean"]["train"]:.3f}, test '
           f'{fc["target_mean"]["test"]:.3f}.', '',
           '| model | features | RMSE | MAE | rank |', '|---|---|---|---|---|']
  for r in fc['rows']:
    lines.append(f'| {r["model"]} | {r["features"]} | {r["rmse"]:.4f} | '
                 f'{r["mae"]:.4f} | {r["rank"] if r["rank"] else "-"} |')
  lines.append('')
  return lines


# ---------------------------------------------------------------------------
# Driver.


def reproduce(plan: Plan) -> dict[str, Any]:
  """Runs the planned experiments (skipping cached ones) and writes results."""
  os.makedirs(plan.out_dir, exist_ok=True)
  t0 = time.perf_counter()
  results: dict[str, Any] = {}
  kselect = _load_cache(plan, 'kselect')
  for name in plan.experiments:
    t1 = time.perf_counter()
    _log(f'--- {name}')
    if name == 'runtime':
      results[name] = run_runtime(plan)
    elif name == 'fsls':
      results[name] = run_fsls(plan)
    elif name == 'kselect':
      results[name] = kselect = run_kselect(plan)
    elif name == 'composition':
      results[name] = run_composition(plan, kselect)
    elif name == 'anomalies':
      results[name] = run_anomalies(plan, kselect)
    elif name == 'forecast':
      results[name] = run_forecast(plan, kselect)
    _log(f'{name} done in {time.perf_counter() - t1:.0f}s')
  results['wall_seconds'] = time.perf_counter() - t0
  path = write_results(plan, results)
  _log(f'wrote {path} ({results["wall_seconds"]:.0f}s)')
  return results
