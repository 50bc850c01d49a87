"""Training and evaluation throughput of RMTPP, CYAN-RNN and CYAN-RNN(cov).

python scripts/bench_cyan.py [--variants=rmtpp,cyan,cyan_cov] [--epochs=1]
python scripts/bench_cyan.py --data=twitter   # a real set, its own defaults,
                                              # beside the exact-softmax floor
python scripts/bench_cyan.py --devices=1,2,4 --variants=cyan_cov \
    --num_cascades=2000   # data-parallel scaling

Setting: hidden size 32 (embedding, encoder, decoder, attention),
batch 128, length of dependence l = 32, on 20,000 synthetic CP-Exp cascades
(equations.md A2; generated once and cached). Prints one JSON object
`{variant: {"train_events_per_s", "eval_events_per_s", "compile_s", ...}}`.

* events = real (unpadded) events of the batches processed;
* compile_s = ahead-of-time compilation of the train step and of the
  evaluation functions for every bucket shape, measured separately and kept
  out of the timed loops (which then never compile);
* train: full passes over the cascades in training order (forward, backward,
  Adam), timed after one warm-up batch per shape;
* eval: `evaluate.evaluate` (next-user ranking with active-user masking,
  expected next gap via E_1, NLL) over the same cascades.

`--devices=1,2,4`: the same benchmark once per device count, each in a
fresh process (`config.mesh_devices=N`: batch split over N devices,
parameters replicated; `cyan_rcbm.common.sharding`). On a CPU-only machine
the N devices are XLA host devices
(`--xla_force_host_platform_device_count=N`) that share the same cores, so
the numbers show the partitioning overhead, not a speed-up; on a machine
with N accelerators they are the real scaling. Prints
`{"devices": {N: {variant: {...}}}, "note": ...}`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import parallel
from cyan_rcbm.cyan import prior
from cyan_rcbm.cyan import softmax
from cyan_rcbm.cyan import train
from cyan_rcbm.data import registry

_VARIANTS = flags.DEFINE_list('variants', ['rmtpp', 'cyan', 'cyan_cov'],
                              'Model variants to time.')
_EPOCHS = flags.DEFINE_integer('epochs', 1, 'Timed training passes.')
_HIDDEN = flags.DEFINE_integer('hidden', 32, 'Hidden sizes.')
_CASCADES = flags.DEFINE_integer('num_cascades', 20000, 'Synthetic cascades.')
_UNROLL = flags.DEFINE_integer('unroll', -1, 'Scan unroll (-1: config).')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Cascades per train batch.')
_EVAL_BATCH = flags.DEFINE_string(
    'eval_batch_size', '128', "Cascades per evaluation batch ('auto': "
    'batching.eval_batch_size of the backend).')
_MAX_BUCKETS = flags.DEFINE_string(
    'max_buckets', '0', "Bucket shapes kept (0: all; 'auto': per backend).")
_PRECISION = flags.DEFINE_enum('precision', 'float32', ['float32', 'fast'],
                                'Matmul precision policy (config.precision).')
_GROWTH = flags.DEFINE_float('bucket_growth', -1, 'Bucket growth (-1: config).')
_DEVICES = flags.DEFINE_list(
    'devices', [], 'Device counts to compare (e.g. 1,2,4), each in its own '
    'process; empty: one run with --mesh_devices.')
_MESH_DEVICES = flags.DEFINE_integer(
    'mesh_devices', 1, 'config.mesh_devices of a single run (1: no sharding).')
_DATA = flags.DEFINE_string(
    'data', '', "A variant of configs/cyan.py to time with its own defaults "
    "(e.g. 'twitter'; the transition prior from its training split); empty: "
    'the 32-user synthetic setting above.')
_SOFTMAX = flags.DEFINE_string('softmax', 'exact',
                               "train.softmax: 'exact' or 'sampled'.")
_FLOOR_BATCH = 2048  # events per softmax-floor step


def _config(variant: str) -> ml_collections.ConfigDict:
  if _DATA.value:
    extra = {}
    if flags.FLAGS['num_cascades'].present:  # a generated set's size
      extra['data__num_cascades'] = _CASCADES.value
    return config_loading.load_config(
        f'configs/cyan.py:{_DATA.value}', model__variant=variant,
        mesh_devices=_MESH_DEVICES.value, train__softmax=_SOFTMAX.value,
        **extra)
  h = _HIDDEN.value
  overrides = dict(
      data__num_cascades=_CASCADES.value, data__split_fractions=(1.0, 0.0, 0.0),
      model__variant=variant, model__embed_dim=h, model__encoder_hidden=h,
      model__decoder_hidden=h, model__attention_size=h,
      model__dependence_length=32, batching__batch_size=_BATCH.value,
      batching__eval_batch_size=backend_defaults.resolve(
          _EVAL_BATCH.value, 'batching.eval_batch_size', '--eval_batch_size'),
      batching__max_buckets=backend_defaults.resolve(
          _MAX_BUCKETS.value, 'batching.max_buckets', '--max_buckets'),
      mesh_devices=_MESH_DEVICES.value)
  if _UNROLL.value > 0:
    overrides['model__unroll'] = _UNROLL.value
  if _GROWTH.value > 0:
    overrides['batching__bucket_growth'] = _GROWTH.value
  return config_loading.load_config('configs/cyan.py:synthetic_cp_exp',
                                    **overrides)


def _bench(variant: str) -> dict:
  config = _config(variant)
  mesh = sharding.create_mesh(config.mesh_devices)
  splits = registry.load_splits(config.data)
  train_b = train.make_batchers(config, splits)[0]
  graphdef, params = model_lib.init_params(
      config.model, splits.train.num_users, calendar=train_b.calendar)
  params = prior.install(params, config.model, splits.train,
                         splits.train.num_users)
  tx = train.create_optimizer(config.train)
  params, opt_state, stats = sharding.replicate(
      (params, tx.init(params), train._zero_stats()), mesh)  # pylint: disable=protected-access
  sampler = softmax.sampler_for(config.train, splits.train, config.seed)
  step_fn = train.create_train_step(graphdef, config.train, mesh, sampler)
  step0 = sharding.replicate(np.int32(0), mesh)
  predictor = evaluate.ModelPredictor(graphdef, params)

  # Compile every shape ahead of time (train step and eval functions).
  t0 = time.perf_counter()
  examples = {}
  for bucket, rows in train_b.plan():
    examples.setdefault(
        bucket, parallel.device_batch(train_b.make_batch(bucket, rows), mesh))
  for batch in examples.values():
    inputs = evaluate.model_inputs(batch)
    step_fn.lower(params, opt_state, stats, inputs, step0).compile()
  compile_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  for batch in examples.values():
    jax.block_until_ready(predictor.predict(batch))
    evaluate.evaluate(predictor, _single(train_b, batch))
  compile_eval = time.perf_counter() - t0
  # Warm-up: one step per shape (allocations, thread pools).
  for batch in examples.values():
    params, opt_state, stats = step_fn(params, opt_state, stats,
                                       evaluate.model_inputs(batch), step0)
  jax.block_until_ready(params)

  host = [[train_b.make_batch(b, r) for b, r in train_b.plan(0, e)]
          for e in range(_EPOCHS.value)]
  events = sum(batch.num_events for epoch in host for batch in epoch)
  padded = sum(batch.users.size for epoch in host for batch in epoch)
  batches = [[parallel.device_batch(batch, mesh) for batch in epoch]
             for epoch in host]
  t0 = time.perf_counter()
  for epoch in range(_EPOCHS.value):
    for batch in batches[epoch]:
      params, opt_state, stats = step_fn(params, opt_state, stats,
                                         evaluate.model_inputs(batch), step0)
  jax.block_until_ready(params)
  train_s = time.perf_counter() - t0

  predictor = evaluate.ModelPredictor(graphdef, params)
  t0 = time.perf_counter()
  result = parallel.evaluate_on_mesh(predictor, train_b, mesh)
  eval_s = time.perf_counter() - t0
  eval_events = train_b.report.num_events
  return dict(
      devices=sharding.num_devices(mesh),
      train_events_per_s=round(events / train_s),
      eval_events_per_s=round(eval_events / eval_s),
      compile_s=round(compile_train + compile_eval, 2),
      compile_train_s=round(compile_train, 2),
      compile_eval_s=round(compile_eval, 2),
      train_s=round(train_s, 2), eval_s=round(eval_s, 2),
      events_per_epoch=train_b.report.num_events,
      padding_share=round(1.0 - events / padded, 4),
      peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                         / 2 ** 20, 2),
      head_input_dim=int(params['head']['kernel'].shape[0])
      if 'kernel' in params['head'] else None,
      num_users=int(splits.train.num_users),
      shapes=[list(s) for s in train_b.shapes()],
      final_nll=round(result['nll_per_event'], 4))


def softmax_floor(num_users: int, dim: int, reps: int = 5) -> dict:
  """Events/s of the exact user softmax alone over `num_users` at width `dim`.

  Forward+backward: the gradient of `mean(logsumexp(h E^T) - target logit)`
  in `h` and `E`; forward with ranking: the log-softmax and each target's
  rank. No exact-likelihood model can train or rank faster.
  """
  key_h, key_e = jax.random.split(jax.random.key(0))
  h = jax.random.normal(key_h, (_FLOOR_BATCH, dim))
  table = jax.random.normal(key_e, (num_users, dim)) / np.sqrt(dim)
  target = jnp.arange(_FLOOR_BATCH) % num_users

  def nll(table, h):
    logits = h @ table.T
    return jnp.mean(jax.nn.logsumexp(logits, -1) -
                    logits[jnp.arange(_FLOOR_BATCH), target])

  def rank(table, h):
    log_probs = jax.nn.log_softmax(h @ table.T, -1)
    hit = log_probs[jnp.arange(_FLOOR_BATCH), target]
    return jnp.sum(log_probs > hit[:, None], -1), hit

  out = {}
  for name, fn in (('train', jax.jit(jax.grad(nll, argnums=(0, 1)))),
                   ('eval', jax.jit(rank))):
    jax.block_until_ready(fn(table, h))
    t0 = time.perf_counter()
    for _ in range(reps):
      jax.block_until_ready(fn(table, h))
    out[f'{name}_events_per_s'] = round(
        reps * _FLOOR_BATCH / (time.perf_counter() - t0))
  return out


class _single:  # pylint: disable=invalid-name
  """A batcher-like object yielding one batch (for compiling eval shapes)."""

  def __init__(self, batcher, batch):
    self._batch = batch
    self.parents = batcher.parents

  def batches(self):
    yield self._batch


def main(argv):
  del argv  # flags only; --devices re-runs with sys.argv
  if _DEVICES.value:
    out = sharding.rerun_per_device_count(
        __file__, sys.argv[1:], [int(c) for c in _DEVICES.value])
    out['load_average'] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    return
  out = {}
  with precision.scope(_PRECISION.value):
    for variant in _VARIANTS.value:
      out[variant] = _bench(variant)
      if _DATA.value:  # the floor of this vocabulary, at 64 and the head's width
        dims = sorted({64, out[variant]['head_input_dim'] or 64})
        floor = {d: softmax_floor(out[variant]['num_users'], d) for d in dims}
        out[variant]['softmax_floor'] = floor
        top = floor[max(dims)]
        out[variant]['share_of_floor'] = dict(
            train=round(out[variant]['train_events_per_s'] /
                        floor[64]['train_events_per_s'], 3),
            eval=round(out[variant]['eval_events_per_s'] /
                       floor[64]['eval_events_per_s'], 3),
            train_at_head_width=round(out[variant]['train_events_per_s'] /
                                      top['train_events_per_s'], 3))
      print(f'[bench] {variant}: {json.dumps(out[variant])}', flush=True)
  out['load_average'] = [round(x, 2) for x in os.getloadavg()]
  out['devices'] = str(jax.devices())
  out.update(backend_defaults.environment(), precision=_PRECISION.value)
  print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
