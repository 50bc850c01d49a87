"""Training and evaluation of an RCBM run: `train_and_evaluate(config,
workdir)`.

Writes to `workdir`:
* `config.json`, `metrics.jsonl` (one line per outer iteration: level,
  iteration, objective, sigma, beta, ...);
* `model.npz` (`cyan_rcbm.rcbm.io`), `filters_level<l>.npy` ([K, D, Tw],
  strongest first);
* `eval.json`: per level `objective`, `sigma`, `beta`, `k_selected` (knee of
  F(m), Eq. 11) and BIC curve; `perplexity_train`, `perplexity_test`
  (held-out, h inferred on the learned filters), `train_seconds`;
* `filters_level<l>.png`, `k_selection_level<l>.png`, `fit_histograms.png`.

Data: `cyan_rcbm.rcbm.input_pipeline` (`load_dynamics`, `split_indices`,
`data_scale`; re-exported here). Devices: `config.mesh_devices` > 1 (or 0:
all) splits the samples over a device mesh for training and inference
(`cyan_rcbm.common.sharding`); `config.distributed` first calls
`jax.distributed.initialize()` for multi-host runs.

Resuming: checkpoints (`cyan_rcbm.common.checkpoint`) hold the solver state
of the level being trained every `checkpoint_every` outer iterations; a
finished level is kept in `levels/level<l>.npz`. Re-running the same command
continues from there; a finished run reuses `model.npz`.

Progress (stdout, plain lines, every `log_every` outer iterations:
`cbm.FitProgress`): per level, each screened restart as it runs, its end
and the kept one, then the kept run's own iterations with rate and ETA;
the evaluation prints a start and an end line (with seconds) for inference,
the test likelihood, every BIC refit (plus its iterations) and the figures.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import checkpoint as checkpoint_lib
from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import select_k
# Re-exported: the data side of a run.
from cyan_rcbm.rcbm.input_pipeline import data_scale
from cyan_rcbm.rcbm.input_pipeline import load_dynamics
from cyan_rcbm.rcbm.input_pipeline import split_indices

EVAL_FILE = 'eval.json'
LEVELS_DIR = 'levels'


# ---------------------------------------------------------------------------
# Config.


def _per_level(value, count: int, name: str) -> list[int]:
  if isinstance(value, (list, tuple)):
    values = [int(v) for v in value]
    if len(values) != count:
      raise errors.ConfigError(
          f'{name} has {len(values)} entries for {count} levels; give one '
          'int or one per level')
  else:
    values = [int(value)] * count
  if any(v < 1 for v in values):
    raise errors.ConfigError(f'{name} must be >= 1, got {value!r}')
  return values


def level_specs(config: ml_collections.ConfigDict
                ) -> list[rcbm_lib.LevelSpec]:
  """`model.num_filters`, `filter_length`, `pool` as one spec per level."""
  m = config.model
  if int(m.num_levels) < 1:
    raise errors.ConfigError(f'model.num_levels must be >= 1, got '
                             f'{m.num_levels}')
  num = int(m.num_levels)
  ks = _per_level(m.num_filters, num, 'model.num_filters')
  tws = _per_level(m.filter_length, num, 'model.filter_length')
  pool = m.pool
  if isinstance(pool, (list, tuple)) and len(pool) == num - 1:
    pool = tuple(pool) + (1,)
  pools = _per_level(pool, num, 'model.pool')
  return [rcbm_lib.LevelSpec(k, tw, c) for k, tw, c in zip(ks, tws, pools)]


def solver_config(config: ml_collections.ConfigDict) -> cbm.SolverConfig:
  """The `cbm.SolverConfig` of `config.model` (ConfigError when invalid)."""
  m = config.model
  try:
    return cbm.SolverConfig(
        step=m.step, penalty=m.penalty, lam=float(m.lam),
        warmup_iters=int(m.warmup_iters), w_steps=int(m.w_steps),
        alpha=float(m.alpha),
        inner_max_iters=int(m.inner_max_iters),
        inner_tol=float(m.inner_tol), form=m.form)
  except ValueError as e:
    raise errors.ConfigError(f'config.model: {e}') from None


def _fit_kwargs(config: ml_collections.ConfigDict, mesh=None
                ) -> dict[str, Any]:
  m = config.model
  if m.init not in cbm.INITS:
    raise errors.ConfigError(f'model.init must be one of {cbm.INITS}, got '
                             f'{m.init!r}')
  return dict(max_iters=int(m.max_iters), tol=float(m.tol),
              min_iters=int(m.min_iters), num_restarts=int(m.num_restarts),
              restart_iters=int(m.restart_iters),
              batch_size=int(m.batch_size), seed=int(config.seed),
              init=m.init, mesh=mesh)


def _float_dtype():
  return np.float64 if jax.config.jax_enable_x64 else np.float32


# ---------------------------------------------------------------------------
# Checkpoints and finished levels.


def _level_path(workdir: str, number: int) -> str:
  return os.path.join(workdir, LEVELS_DIR, f'level{number}.npz')


def _save_level(workdir, number, level, h, info):
  os.makedirs(os.path.join(workdir, LEVELS_DIR), exist_ok=True)
  path = _level_path(workdir, number)
  tmp = path + '.tmp.npz'
  np.savez(tmp, w=level.w, sigma=level.sigma, beta=level.beta, lam=level.lam,
           pool=level.pool, strength=level.strength, h=h,
           **{k: np.asarray(v) for k, v in info.items()})
  os.replace(tmp, path)


def _load_level(workdir, number):
  """(Level, sorted training h, info dict) of a finished level."""
  with np.load(_level_path(workdir, number)) as z:
    level = rcbm_lib.Level(
        w=z['w'], sigma=float(z['sigma']), beta=float(z['beta']),
        lam=float(z['lam']), pool=int(z['pool']), strength=z['strength'])
    info = {'objective': float(z['objective']),
            'outer_iterations': int(z['outer_iterations']),
            'converged': bool(z['converged']), 'seconds': float(z['seconds'])}
    return level, z['h'], info


def _state_template(x_NxDxT, spec, fit_kwargs, cfg):
  mesh = fit_kwargs['mesh']
  x = cbm.to_solver_layout(x_NxDxT, fit_kwargs['batch_size'], cfg.form,
                           mesh=mesh)
  w = np.zeros((spec.num_filters, x_NxDxT.shape[1], spec.filter_length),
               x_NxDxT.dtype)
  return cbm.init_state(x, w, mesh=mesh)


# ---------------------------------------------------------------------------
# The run.


@precision.from_config
@backend_defaults.resolved
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> dict[str, Any]:
  """Trains an RCBM level by level and evaluates it (module docstring).

  Returns:
    The contents of `eval.json`.
  """
  sharding.initialize_distributed(config.distributed)
  mesh = sharding.create_mesh(config.mesh_devices)
  resuming = sharding.prepare_workdir(config, workdir)
  specs = level_specs(config)
  cfg = solver_config(config)
  fit_kwargs = _fit_kwargs(config, mesh)
  dyn = load_dynamics(config.data)
  train_idx, test_idx = split_indices(dyn.num_samples,
                                      float(config.data.test_fraction),
                                      int(config.data.split_seed))
  x_all = np.asarray(dyn.x, np.float64)
  scale = data_scale(x_all[train_idx], config.data.scale)
  dtype = _float_dtype()
  x_train = (x_all[train_idx] / scale[None, :, None]).astype(dtype)
  if 0 < fit_kwargs['batch_size'] < len(train_idx):
    sharding.check_divisible(fit_kwargs['batch_size'], mesh,
                             'model.batch_size')
  print(f'[rcbm] {dyn.source}: {dyn.num_samples} samples of '
        f'{dyn.num_features} features x {dyn.length} steps; '
        f'{len(train_idx)} train / {len(test_idx)} test; scale='
        f'{config.data.scale}; levels {[dataclasses.astuple(s) for s in specs]}'
        f' (K, Tw, pool); {sharding.describe(mesh)}', flush=True)

  model_path = os.path.join(workdir, io_lib.MODEL_FILE)
  eval_path = os.path.join(workdir, EVAL_FILE)
  if resuming and os.path.exists(model_path) and os.path.exists(eval_path):
    print(f'[rcbm] {workdir} holds a finished run: reusing {model_path}.',
          flush=True)
    return _read_json(eval_path)

  model, level_info, seconds = _train(config, workdir, resuming, x_train, specs, cfg,
                                fit_kwargs, dyn.feature_names, scale)
  if sharding.is_primary():
    io_lib.save_model(model, model_path)
    for i, level in enumerate(model.levels):
      np.save(os.path.join(workdir, f'filters_level{i + 1}.npy'), level.w)
  result = evaluate(config, workdir, model, level_info, x_all[train_idx],
                    x_all[test_idx], seconds, fit_kwargs)
  if sharding.is_primary():
    workdir_lib.dump_json(result, eval_path)
  print(f'[rcbm] done: {eval_path}', flush=True)
  return result


def _read_json(path):
  import json  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    return json.load(f)


def _train(config, workdir, resuming, x_train, specs, cfg, fit_kwargs,
           feature_names, scale):
  """Level-by-level training with checkpoints; (model, level info, seconds)."""
  ckpt = checkpoint_lib.Checkpointer(workdir)
  metrics = workdir_lib.MetricWriter(workdir, sharding.metrics_file())
  completed, offsets, seconds, level_info = [], [0], [], []
  resume_state = None
  x_level = x_train
  if resuming:
    for number in range(1, len(specs) + 1):
      if not os.path.exists(_level_path(workdir, number)):
        break
      level, h, info = _load_level(workdir, number)
      completed.append((level, h))
      offsets.append(offsets[-1] + info['outer_iterations'])
      seconds.append(info['seconds'])
      level_info.append(info)
      x_level = rcbm_lib.max_pool(h, level.pool).astype(x_train.dtype)
    latest = ckpt.latest_step()
    if len(completed) < len(specs) and latest is not None:
      template = _state_template(x_level, specs[len(completed)], fit_kwargs,
                                 cfg)
      restored = ckpt.restore(template)  # None: only a finished level's
      if restored is not None and restored[2].get('level') == len(
          completed) + 1:
        step, state, meta = restored
        resume_state = state
        print(f'[rcbm] resuming level {meta["level"]} at outer iteration '
              f'{int(state.iteration)} (checkpoint step {step}).', flush=True)
    last_step = offsets[-1] + (int(resume_state.iteration)
                               if resume_state is not None else 0)
    metrics.truncate_after(last_step)
  level_start = {}

  reporters = []  # the FitProgress of the level being trained

  def make_callback(number):
    offset = offsets[number - 1]
    spec = specs[number - 1]
    progress = cbm.FitProgress(
        f'rcbm L{number}', fit_kwargs['max_iters'],
        num_restarts=fit_kwargs['num_restarts'],
        restart_iters=fit_kwargs['restart_iters'],
        log_every=int(config.log_every))
    reporters.append(progress)
    restarts = fit_kwargs['num_restarts']
    print(f'[rcbm] level {number}: K={spec.num_filters} filters of length '
          f'{spec.filter_length}, at most {fit_kwargs["max_iters"]} outer '
          'iterations' + (f', {restarts} restarts screened first'
                          if restarts > 1 else ''), flush=True)
    level_start[number] = time.perf_counter()

    def callback(state, info):
      it = int(info['iteration'])
      metrics.write(offset + it, level=number, **info)
      progress.iteration(info)
      if (it == int(state.iteration)
          and it % max(1, int(config.checkpoint_every)) == 0):
        ckpt.save(offset + it, state,
                  {'level': number, 'iteration': it,
                   'num_filters': spec.num_filters})

    return callback

  def on_level_done(number, level, h, fit):
    secs = time.perf_counter() - level_start.get(number, time.perf_counter())
    iters = int(fit.state.iteration)
    info = {'objective': float(fit.state.objective),
            'outer_iterations': iters, 'converged': bool(fit.converged),
            'seconds': secs}
    if sharding.is_primary():
      _save_level(workdir, number, level, h, info)
    offsets.append(offsets[number - 1] + iters)
    seconds.append(secs)
    level_info.append(info)
    print(f'[rcbm] level {number} done: {iters} outer iterations, '
          f'{secs:.1f}s, converged={fit.converged}, sigma={level.sigma:.4g}, '
          f'beta={level.beta:.4g}, strength shares '
          f'{np.round(level.strength / max(level.strength.sum(), 1e-30), 3)}',
          flush=True)

  inference = rcbm_lib.InferenceSettings(
      max_iters=int(config.eval.infer_max_iters),
      tol=float(config.eval.infer_tol),
      batch_size=int(config.eval.infer_batch_size), form=config.model.form)
  model, _ = rcbm_lib.fit_rcbm(
      x_train, specs, cfg=cfg, feature_names=feature_names, scale=scale,
      inference=inference, completed=completed,
      fit_kwargs=dict(fit_kwargs, screen_callback=lambda j, state, info:
                      reporters[-1].screen(j, state, info)),
      resume_state=resume_state, make_callback=make_callback,
      on_level_done=on_level_done, config=config.to_dict())
  ckpt.close()
  return model, level_info, float(sum(seconds))


# ---------------------------------------------------------------------------
# Evaluation.


def evaluate(config, workdir, model, level_info, x_train, x_test,
             train_seconds, fit_kwargs) -> dict[str, Any]:
  """eval.json contents (and figures): see the module docstring."""
  t_eval = time.perf_counter()
  t0 = _start(f'inferring the activations of {x_train.shape[0]} train '
              f'samples ({model.num_levels} levels)')
  acts_train = rcbm_lib.infer(model, x_train, mesh=fit_kwargs['mesh'])
  logp_train = likelihood.joint_from_activations(model, acts_train)
  result: dict[str, Any] = {
      'num_train': int(x_train.shape[0]), 'num_test': int(x_test.shape[0]),
      'perplexity_train': likelihood.perplexity_from_log_prob(logp_train),
      'perplexity_test': None, 'mean_log_prob_train': float(logp_train.mean()),
      'mean_log_prob_test': None, 'train_seconds': train_seconds,
  }
  _done(t0, f'perplexity_train {result["perplexity_train"]:.6g}')
  if x_test.shape[0]:
    t0 = _start(f'log-likelihood of {x_test.shape[0]} test samples')
    logp_test = likelihood.log_prob(model, x_test)
    result['perplexity_test'] = likelihood.perplexity_from_log_prob(logp_test)
    result['mean_log_prob_test'] = float(logp_test.mean())
    _done(t0, f'perplexity_test {result["perplexity_test"]:.6g}')
  levels = []
  x_level = x_train / model.scale[None, :, None]
  for i, (level, info) in enumerate(zip(model.levels, level_info)):
    f_m = select_k.cumulative_activation(level.strength)
    entry = {
        'level': i + 1, 'num_filters': level.num_filters,
        'filter_length': level.filter_length, 'pool': level.pool,
        'sigma': level.sigma, 'beta': level.beta, 'lam': level.lam,
        **info,
        'k_selected': select_k.knee(f_m, float(config.eval.knee_eps)),
        'cumulative_activation': f_m.tolist(),
        'bic': level_bic_curve(x_level, level, config, fit_kwargs,
                               number=i + 1),
    }
    levels.append(entry)
    x_level = rcbm_lib.max_pool(acts_train[i].h, level.pool)
  result['levels'] = levels
  for key in ('objective', 'sigma', 'beta', 'k_selected'):
    result[key] = [lv[key] for lv in levels]
  if config.plots and sharding.is_primary():
    from cyan_rcbm.rcbm import plots  # pylint: disable=g-import-not-at-top
    t0 = _start('writing figures')
    plots.write_all(workdir, model, acts_train, levels)
    _done(t0)
  print(f'[rcbm] eval: finished in {time.perf_counter() - t_eval:.1f}s',
        flush=True)
  return result


def _start(what: str) -> float:
  """Prints `[rcbm] eval: WHAT ...`; returns the start time for `_done`."""
  print(f'[rcbm] eval: {what} ...', flush=True)
  return time.perf_counter()


def _done(t0: float, what: str = '') -> None:
  """Prints `[rcbm] eval: done in Xs (WHAT)`."""
  print(f'[rcbm] eval: done in {time.perf_counter() - t0:.1f}s'
        + (f' ({what})' if what else ''), flush=True)


def level_bic_curve(x_level, level, config, fit_kwargs, number: int = 1):
  """BIC of the level's CBM for each K of `eval.bic_num_filters` (equations.md
  B5).

  Each K trains a CBM on this level's input (the main model's lower levels
  fixed), with the main run's settings and `eval.bic_max_iters`; progress
  lines name the level `number`.
  """
  ks = [int(k) for k in config.eval.bic_num_filters]
  if not ks:
    return None
  cfg = solver_config(config)
  kwargs = dict(fit_kwargs, max_iters=int(config.eval.bic_max_iters),
                num_restarts=1)
  x = np.asarray(x_level, _float_dtype())
  t_all = _start(f'BIC of level {number}: {len(ks)} refits (K in {ks}) of '
                 f'at most {kwargs["max_iters"]} outer iterations on '
                 f'{x.shape[0]} samples')
  done = []

  def log_l(k):
    t0 = time.perf_counter()
    progress = cbm.FitProgress(f'rcbm BIC L{number} K={k}',
                               kwargs['max_iters'],
                               log_every=int(config.log_every))
    fit = cbm.fit_cbm(x, k, level.filter_length, cfg=cfg,
                      callback=lambda state, info: progress.iteration(info),
                      **kwargs)
    value = float(np.sum(likelihood.cbm_log_joint(
        fit.sq_err, fit.l1, float(fit.params.sigma), float(fit.params.beta))))
    done.append(k)
    print(f'[rcbm] eval: BIC level {number} K={k} ({len(done)}/{len(ks)}): '
          f'log L {value:.6g}, {int(fit.state.iteration)} outer iterations, '
          f'converged={fit.converged}, {time.perf_counter() - t0:.1f}s',
          flush=True)
    return value

  ks_arr, values = select_k.bic_curve(ks, log_l, x.shape[1],
                                      level.filter_length, x.shape[0])
  _done(t_all, f'BIC of level {number}')
  return {'num_filters': ks_arr.tolist(), 'bic': values.tolist()}
