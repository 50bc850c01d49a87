"""Training and evaluation of CYAN-RNN / RMTPP: `train_and_evaluate(config,
workdir)`.

Loss (paper Eq. 8, equations.md A4): `-[log p(u_{k+1} | H_k) + log f(t_{k+1} -
t_k)]` summed over the next events of a batch and divided by their number. With
`train.censor_end = T > 0` (off by default: the paper's Eq. 8) every cascade
is taken as observed until `T` after its first event with no event after its
last one, `t_N`, and the loss adds `-log S(T - t_N)` (`tpp.log_survival`) per
cascade (`cyan_rcbm.cyan.censoring`), the term of the point-process
likelihood on `[t_1, t_1 + T]` that Eq. 8 leaves out (without it the model
never learns that a cascade stops);
the sum is still divided by the number of next events, and validation
(early stopping) uses the same objective. Adam
after clipping the global gradient norm; orthogonal init of the recurrent
kernels (in the model); early stopping on the validation NLL per event with
`train.patience`; the test set is scored with the best parameters.

The workdir holds `config.json`, `metrics.jsonl` (train rows every
`log_every` steps; valid rows at each epoch end), `checkpoints/`, and at the
end `eval_test.json`, plus the analyses of `cyan_rcbm.cyan.analysis` for
attention variants (`alignments.npz`/`.png`; `network_inference.json`/`.png`
when the data has a graph or true parents).

Resumption: a checkpoint holds params, optimizer state, the best params and
(epoch, batch position, step, early-stopping state); the batch order is a
pure function of `(seed, epoch)`, so re-running the same command replays the
rest of the interrupted epoch and ends with the same result as an
uninterrupted run. A non-finite loss stops the run with `FloatingPointError`
naming the step and epoch; parameters are not updated from that step on, and
the last checkpoint (always from finite steps) is kept.

Data parallel (`config.mesh_devices`, `cyan_rcbm.common.sharding`): the
batch axis of every train and evaluation batch is split over a 1-D device
mesh, parameters and optimizer state are replicated, and XLA all-reduces the
gradient (the loss is a sum over the batch). Batches whose rows do not
divide the device count get empty rows (mask 0: no loss, no metric;
`cyan_rcbm.cyan.parallel`).

Progress (stdout, plain lines): the train step is compiled for every batch
shape before training (`[cyan] compiling ...`, `[cyan] compiled in Xs`);
then a step line every `log_every` steps (epoch, NLL, events/s, ETA), a
line when validation starts and the epoch line with its seconds, and the
same for the test evaluation and the analyses.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import checkpoint as checkpoint_lib
from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import analysis
from cyan_rcbm.cyan import baseline_run
from cyan_rcbm.cyan import baselines
from cyan_rcbm.cyan import censoring
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import parallel
from cyan_rcbm.cyan import prior as prior_lib
from cyan_rcbm.cyan import softmax as softmax_lib
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.data import splits as splits_lib

EVAL_FILE = 'eval_test.json'


def _after_step(step: int) -> None:
  """Hook called after every train step (tests inject interruptions here)."""


def make_batchers(config: ml_collections.ConfigDict,
                  splits: splits_lib.Splits
                  ) -> tuple[batching.CascadeBatcher, ...]:
  """Train, valid and test batchers with the config's bucketing."""
  config = backend_defaults.resolve_config(config)  # 'auto' sizes
  b = config.batching
  calendar = config.model.calendar_embed > 0 and all(
      c.timestamps is not None for _, d in splits.items() for c in d.cascades)
  buckets = tuple(b.bucket_lengths) or None
  if buckets is None:  # one set of bucket lengths for all splits.
    longest = max(max((len(c) for c in d.cascades), default=2)
                  for _, d in splits.items())
    if config.data.max_events:
      longest = min(longest, config.data.max_events)
    buckets = batching.bucket_lengths_for(longest, b.min_bucket,
                                          b.bucket_growth, b.fine_until)
    buckets = backend_defaults.cap_buckets(buckets, b.max_buckets)
  out = []
  for name, data in splits.items():
    if not len(data):
      out.append(None)
      continue
    out.append(batching.CascadeBatcher(
        data, batch_size=b.batch_size if name == 'train' else
        b.eval_batch_size, max_events=config.data.max_events,
        bucket_lengths=buckets, max_batch_events=b.max_batch_events,
        calendar=calendar))
  return tuple(out)


def _time_init(train: batching.CascadeBatcher) -> tuple[float, float]:
  """(-log mean gap, 1 / largest gap) of the training data, for the time head.

  The time head starts as an exponential law with the data's mean gap and a
  slope `w = model.time_w_init / largest gap`, small enough that the
  intensity `exp(w d + b)` barely grows over the range of observed gaps
  (a large initial `w` gives heavy-tailed data astronomically large NLLs).
  """
  total, count, largest = 0.0, 0, 0.0
  for bucket, rows in train.plan():
    batch = train.make_batch(bucket, rows)
    gaps = batch.gaps[:, 1:][batch.mask[:, 1:]]
    total += float(gaps.sum())
    count += int(gaps.size)
    largest = max(largest, float(gaps.max(initial=0.0)))
  mean = total / count if count and total > 0 else 1.0
  return -math.log(mean), 1.0 / (largest if largest > 0 else 1.0)


def _loss(params, graphdef, inputs, censor_end: float = 0.0,
          sampler: softmax_lib.Sampler | None = None, step=None):
  """Eq. 8 per next event, plus the censored last gaps if `censor_end > 0`.

  With a `sampler` the user term is the sampled softmax over the next user
  and the step's negatives (`train.softmax='sampled'`).
  """
  users, gaps, mask, calendar = inputs
  model = nnx.merge(graphdef, params)
  if sampler is None:
    out = model(users, gaps, mask, calendar, leave_one_out=True)
    user_nll, time_nll, target = model_lib.event_nll(out, users, gaps, mask)
  else:
    user_nll, b, w = model.sampled_user_nll(
        users, gaps, mask, calendar, sampler.negatives(step),
        sampler.log_inclusion)
    out = model_lib.Outputs(None, b, w, None)
    _, time_nll, target = model_lib.event_nll(out, users, gaps, mask)
    user_nll = jnp.where(target, user_nll, 0.0)
  count = jnp.sum(target)
  user_sum, time_sum = jnp.sum(user_nll), jnp.sum(time_nll)
  if censor_end > 0:
    censored_sum = jnp.sum(censoring.censored_nll(out, gaps, mask, censor_end))
  else:
    censored_sum = jnp.zeros((), user_sum.dtype)
  loss = (user_sum + time_sum + censored_sum) / jnp.maximum(count, 1)
  return loss, (user_sum, time_sum, censored_sum, count)


def _train_step(graphdef, tx, censor_end, sampler, params, opt_state, stats,
                inputs, step):
  """One Adam step; skips the update (and all later ones) on a non-finite loss."""
  grad_fn = jax.value_and_grad(_loss, has_aux=True)
  (loss, (user_sum, time_sum, censored_sum, count)), grads = grad_fn(
      params, graphdef, inputs, censor_end, sampler, step)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads))
  ok = finite & (stats['first_bad'] < 0)
  updates, new_opt_state = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b),
                                       new, old)
  stats = dict(
      user=stats['user'] + jnp.where(ok, user_sum, 0.0),
      time=stats['time'] + jnp.where(ok, time_sum, 0.0),
      censored=stats['censored'] + jnp.where(ok, censored_sum, 0.0),
      count=stats['count'] + jnp.where(ok, count, 0),
      events=stats['events'] + jnp.sum(inputs[2]),
      first_bad=jnp.where((stats['first_bad'] < 0) & ~finite, step,
                          stats['first_bad']))
  return keep(new_params, params), keep(new_opt_state, opt_state), stats


def _zero_stats():
  return dict(user=jnp.zeros((), jnp.float32), time=jnp.zeros((), jnp.float32),
              censored=jnp.zeros((), jnp.float32),
              count=jnp.zeros((), jnp.int32), events=jnp.zeros((), jnp.int32),
              first_bad=jnp.full((), -1, jnp.int32))


def create_optimizer(train_config) -> optax.GradientTransformation:
  """Adam after clipping the global gradient norm to `train.grad_clip`."""
  return optax.chain(optax.clip_by_global_norm(train_config.grad_clip),
                     optax.adam(train_config.learning_rate))


@functools.lru_cache(maxsize=None)
def _jitted_train_step(graphdef, learning_rate: float, grad_clip: float,
                       mesh: Mesh | None, censor_end: float = 0.0,
                       sampler: softmax_lib.Sampler | None = None):
  tx = optax.chain(optax.clip_by_global_norm(grad_clip),
                   optax.adam(learning_rate))
  shardings = {}
  if mesh is not None:
    rep, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
    shardings = dict(in_shardings=(rep, rep, rep, data, rep),
                     out_shardings=rep)
  return jax.jit(functools.partial(_train_step, graphdef, tx, censor_end,
                                   sampler),
                 donate_argnums=(0, 1, 2), **shardings)


def create_train_step(graphdef, train_config, mesh: Mesh | None = None,
                      sampler: softmax_lib.Sampler | None = None):
  """The jitted train step `(params, opt_state, stats, inputs, step) -> ...`.

  Plain `jax.jit` over pure pytrees (params as a pure dict); params, optimizer
  state and stats are donated. With a mesh, `inputs` are split over it on
  the batch axis and everything else is replicated (the gradient's
  all-reduce is XLA's). Cached per (graphdef, learning rate, clip, mesh,
  censor_end, sampler), so runs in one process share compiled code.
  `sampler`: the negatives of `train.softmax='sampled'` (`softmax.Sampler`).
  """
  return _jitted_train_step(graphdef, float(train_config.learning_rate),
                            float(train_config.grad_clip), mesh,
                            censoring.censor_end_of(train_config), sampler)


def _check_mesh(config, mesh: Mesh | None) -> None:
  for key in ('batch_size', 'eval_batch_size'):
    sharding.check_divisible(int(config.batching[key]), mesh,
                             f'batching.{key}')


def _check_data(config, splits: splits_lib.Splits) -> None:
  if not len(splits.train):
    raise errors.DataError('the training split has no cascades.',
                           path=splits.train.source or None)
  if config.model.mask_active:
    for name, data in splits.items():
      repeats = batching.repeated_users(data)
      if repeats:
        raise errors.ConfigError(
            f'{repeats} {name} cascades activate a user more than once, but '
            'model.mask_active=True gives an active user probability 0. Set '
            "data.duplicate_users='first' or model.mask_active=False.")


def _evaluate(predictor, batcher, mesh, what: str) -> tuple[dict, float]:
  """`parallel.evaluate_on_mesh` with a start line; (metrics, seconds)."""
  print(f'[cyan] {what}: evaluating {batcher.num_batches()} batches ...',
        flush=True)
  t0 = time.perf_counter()
  result = parallel.evaluate_on_mesh(predictor, batcher, mesh)
  return result, time.perf_counter() - t0


STOPPING = ('nll', 'user_nll', 'mrr')


def _stopping_value(train_config, valid: dict, objective: float) -> float:
  """The early-stopping criterion (lower is better) of `train.early_stopping`.

  'nll': the training objective per event (Eq. 8, plus the censored term);
  'user_nll': its user term only, which the time term's noise cannot end
  early; 'mrr': minus the validation MRR.
  """
  kind = train_config.get('early_stopping', 'nll')  # checked at the start
  return {'nll': objective, 'user_nll': valid['user_nll_per_event'],
          'mrr': -valid['mrr']}[kind]


def _fetch_stats(stats) -> dict[str, float]:
  s = jax.device_get(stats)
  count = max(int(s['count']), 1)
  return dict(user=float(s['user']) / count, time=float(s['time']) / count,
              censored=float(s['censored']) / count, events=int(s['events']),
              first_bad=int(s['first_bad']), count=int(s['count']))


@precision.from_config
@backend_defaults.resolved
def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains `config.model` on `config.data`, evaluates the best params on test.

  Args:
    config: see configs/cyan.py.
    workdir: run directory; re-running with the same config resumes.

  Returns:
    the test metrics (also in `workdir/eval_test.json`).
  """
  if config.model.variant in baselines.NAMES:
    return baseline_run.train_and_evaluate(config, workdir)
  sharding.initialize_distributed(config.distributed)
  mesh = sharding.create_mesh(config.mesh_devices)
  _check_mesh(config, mesh)
  if config.train.get('early_stopping', 'nll') not in STOPPING:
    raise errors.ConfigError(
        f'train.early_stopping is {config.train.early_stopping!r}; expected '
        f'one of {STOPPING}.')
  censor_end = censoring.censor_end_of(config.train)
  resuming = sharding.prepare_workdir(config, workdir)
  eval_path = os.path.join(workdir, EVAL_FILE)
  splits = registry.load_splits(config.data)
  _check_data(config, splits)
  train_b, valid_b, test_b = make_batchers(config, splits)
  censoring.check_censoring(censor_end, splits, (train_b, valid_b, test_b))
  print(f'[cyan] train: {train_b.report}; {sharding.describe(mesh)}',
        flush=True)
  b_init, w_scale = _time_init(train_b)
  graphdef, params = model_lib.init_params(
      config.model, splits.train.num_users, calendar=train_b.calendar,
      time_b_init=b_init, time_w_scale=w_scale, seed=config.seed)
  params = prior_lib.install(params, config.model, splits.train,
                             splits.train.num_users)
  tx = create_optimizer(config.train)
  state = dict(params=params, opt_state=tx.init(params),
               best_params=jax.tree.map(jnp.copy, params))
  meta = dict(epoch=0, batch=0, step=0, best_valid_nll=None, bad_epochs=0,
              done=False)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  writer = workdir_lib.MetricWriter(workdir, sharding.metrics_file())
  restored = ckpt.restore(state) if resuming else None
  if restored is not None:
    step, state, meta = restored
    writer.truncate_after(step)
    print(f'[cyan] resuming from step {step} (epoch {meta["epoch"]}, batch '
          f'{meta["batch"]})', flush=True)
  else:
    writer.truncate_after(0)

  state = sharding.replicate(state, mesh)
  sampler = softmax_lib.sampler_for(config.train, splits.train, config.seed)
  train_step = create_train_step(graphdef, config.train, mesh, sampler)
  params, opt_state = state['params'], state['opt_state']
  best_params = state['best_params']
  step = int(meta['step'])
  num_batches = train_b.num_batches()
  total = config.train.num_epochs * num_batches
  progress = workdir_lib.Progress('cyan', total=total, unit='events',
                                  start=step)
  zero_stats = lambda: sharding.replicate(_zero_stats(), mesh)
  stats = zero_stats()
  work = 0

  def flush(epoch):
    nonlocal stats, work
    s = _fetch_stats(stats)
    if s['first_bad'] >= 0:
      raise FloatingPointError(
          f'non-finite loss at step {s["first_bad"] + 1} (epoch {epoch + 1}); '
          f'stopped without updating from it; {ckpt.describe_latest()}. '
          'Try a lower train.learning_rate or train.grad_clip.')
    stats = zero_stats()
    if s['count']:
      work += s['events']
      censored = dict(train_censored_nll=s['censored']) if censor_end else {}
      writer.write(step, epoch=epoch + 1, train_nll=s['user'] + s['time'],
                   **censored,
                   train_user_nll=s['user'], train_time_nll=s['time'])
      progress.report(step, work=work, epoch=epoch + 1,
                      nll=s['user'] + s['time'], user=s['user'],
                      time=s['time'])

  def save(epoch, batch):
    t_save = time.perf_counter()
    ckpt.save(step, dict(params=params, opt_state=opt_state,
                         best_params=best_params),
              dict(meta, epoch=epoch, batch=batch, step=step))
    progress.exclude(time.perf_counter() - t_save)

  epoch = int(meta['epoch'])
  if epoch < config.train.num_epochs and not meta['done']:
    parallel.compile_train_step(train_step, train_b, mesh, params,
                                opt_state, stats)
  while epoch < config.train.num_epochs and not meta['done']:
    t0 = time.perf_counter()
    start = int(meta['batch'])
    for i, batch in enumerate(train_b.batches(config.seed, epoch, start),
                              start):
      params, opt_state, stats = train_step(
          params, opt_state, stats,
          evaluate_lib.model_inputs(parallel.device_batch(batch, mesh)),
          sharding.replicate(np.int32(step), mesh))
      step += 1
      _after_step(step)
      every = config.train.checkpoint_every
      if step % config.log_every == 0 or (every and step % every == 0):
        flush(epoch)
      if every and step % every == 0 and i + 1 < num_batches:
        save(epoch, i + 1)
    flush(epoch)
    meta['batch'] = 0
    # Early stopping on the validation NLL per event.
    t_valid = time.perf_counter()
    if valid_b is not None:
      predictor = evaluate_lib.ModelPredictor(graphdef, params)
      valid, valid_secs = _evaluate(predictor, valid_b, mesh,
                                    f'epoch {epoch + 1} valid')
      nll = valid['nll_per_event']
      if censor_end:  # early stopping on the training objective
        valid['censored_nll_per_event'] = censoring.censored_per_event(
            graphdef, params, valid_b, censor_end, mesh)
        valid['objective_per_event'] = nll = (
            nll + valid['censored_nll_per_event'])
      nll = _stopping_value(config.train, valid, nll)
      if not np.isfinite(nll):
        raise FloatingPointError(
            f'non-finite validation NLL after epoch {epoch + 1} (step '
            f'{step}); {ckpt.describe_latest()}.')
      better = meta['best_valid_nll'] is None or nll < meta['best_valid_nll']
      if better:
        meta['best_valid_nll'] = nll
        meta['bad_epochs'] = 0
        best_params = jax.tree.map(jnp.copy, params)
      else:
        meta['bad_epochs'] += 1
      writer.write(step, epoch=epoch + 1,
                   **{f'valid_{k}': v for k, v in valid.items()},
                   epoch_seconds=time.perf_counter() - t0)
      print(f'[cyan] epoch {epoch + 1}: valid '
            f'{"objective" if censor_end else "nll"} '
            f'{valid.get("objective_per_event", valid["nll_per_event"]):.4f} '
            f'(user '
            f'{valid["user_nll_per_event"]:.4f}, time '
            f'{valid["time_nll_per_event"]:.4f}'
            + (f', censored {valid["censored_nll_per_event"]:.4f}'
               if censor_end else '') + f'), acc@1 {valid["acc@1"]:.4f}, '
            f'mrr {valid["mrr"]:.4f}{" *" if better else ""} (valid '
            f'{valid_secs:.1f}s, epoch {time.perf_counter() - t0:.1f}s)',
            flush=True)
      if meta['bad_epochs'] >= config.train.patience:
        print(f'[cyan] early stop: no better valid '
              f'{config.train.get("early_stopping", "nll")} for '
              f'{config.train.patience} epochs', flush=True)
        meta['done'] = True
    else:
      best_params = jax.tree.map(jnp.copy, params)
    progress.exclude(time.perf_counter() - t_valid)  # events/s = training
    epoch += 1
    meta['done'] = meta['done'] or epoch >= config.train.num_epochs
    save(epoch, 0)

  # Test evaluation with the best params, then the analyses.
  predictor = evaluate_lib.ModelPredictor(graphdef, best_params)
  test_secs = 0.0
  if test_b is not None:
    result, test_secs = _evaluate(predictor, test_b, mesh,
                                  'test (best params)')
  else:
    result = metrics.compute_metrics(None, None, None, None, [])
  result['time_unit'] = splits.test.time_unit
  if censor_end and test_b is not None:
    result['censored_nll_per_event'] = censoring.censored_per_event(
        graphdef, best_params, test_b, censor_end, mesh)
  result['best_valid_nll'] = meta['best_valid_nll']
  result['epochs'] = epoch
  result['steps'] = step
  if sharding.is_primary():
    workdir_lib.dump_json(result, eval_path)
  print(f'[cyan] test: ' + ', '.join(
      f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
      for k, v in result.items()) + f' ({test_secs:.1f}s)', flush=True)
  if (config.model.variant != 'rmtpp' and test_b is not None
      and sharding.is_primary()):
    print('[cyan] analyses (alignments, network inference) ...', flush=True)
    t0 = time.perf_counter()
    analysis.run_analyses(config, workdir, predictor, test_b, splits.test)
    print(f'[cyan] analyses done in {time.perf_counter() - t0:.1f}s',
          flush=True)
  return result
