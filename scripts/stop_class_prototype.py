"""The STOP-class prototype of `forecast_calibration.py` (not a library option).

A CYAN-RNN(cov) with one more "user", STOP, in its softmax: `pi_k =
p(STOP | H_k)` is the probability that the cascade ends after event k (a
cure-fraction law: the next gap is `f(d)` with probability `1 - pi_k`,
infinite with `pi_k`). Loss: Eq. 8 plus, per cascade, `-log[pi_N + (1 -
pi_N) S(censor_end - t_N)]` (`-log pi_N` when `censor_end = 0`). Trained
with its own loop (no checkpoints). Forecasts cut every sample at its
first STOP and condition the first draw on the observed silence.
"""

from __future__ import annotations

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cyan_rcbm.cyan import censoring
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import sampling
from cyan_rcbm.cyan import tpp
from cyan_rcbm.cyan import train as train_lib


def stop_objective(params, graphdef, stop_id: int, censor_end: float,
                    inputs) -> tuple[jax.Array, jax.Array]:
  """(sum of Eq. 8 + the end terms of the STOP law, next events)."""
  users, gaps, mask, calendar = inputs
  out = nnx.merge(graphdef, params)(users, gaps, mask, calendar)
  user_nll, time_nll, target = model_lib.event_nll(out, users, gaps, mask)
  log_pi = jnp.minimum(out.log_probs[..., stop_id], -1e-7)
  end = -log_pi
  if censor_end > 0:  # -log[pi + (1 - pi) S]: S from the library's term
    log_s = -censoring.censored_nll(out, gaps, mask, censor_end)
    end = -jnp.logaddexp(log_pi, jnp.log1p(-jnp.exp(log_pi)) + log_s)
  last = mask & ~target
  return (jnp.sum(user_nll) + jnp.sum(time_nll)
          + jnp.sum(jnp.where(last, end, 0.0)), jnp.sum(target))


def train(config, splits, censor_end: float):
  """Adam on `stop_objective`, early stopping on its validation value."""
  train_b, valid_b, _ = train_lib.make_batchers(config, splits)
  b_init, w_scale = train_lib._time_init(train_b)  # pylint: disable=protected-access
  stop_id = splits.train.num_users
  graphdef, params = model_lib.init_params(
      config.model, stop_id + 1, calendar=False, time_b_init=b_init,
      time_w_scale=w_scale, seed=config.seed)
  objective = functools.partial(stop_objective, graphdef=graphdef,
                                stop_id=stop_id, censor_end=censor_end)
  tx = train_lib.create_optimizer(config.train)

  def mean_loss(params, inputs):
    total, count = objective(params, inputs=inputs)
    return total / jnp.maximum(count, 1)

  @jax.jit
  def step(params, opt_state, inputs):
    grads = jax.grad(mean_loss)(params, inputs)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  valid = jax.jit(lambda p, i: objective(p, inputs=i))
  opt_state, best, best_params, bad = tx.init(params), np.inf, params, 0
  for epoch in range(config.train.num_epochs):
    for batch in train_b.batches(config.seed, epoch):
      params, opt_state = step(params, opt_state,
                               evaluate_lib.model_inputs(batch))
    sums = jax.device_get([valid(params, evaluate_lib.model_inputs(b))
                           for b in valid_b.batches()])
    value = sum(float(t) for t, _ in sums) / sum(int(c) for _, c in sums)
    bad = 0 if value < best else bad + 1
    if value < best:
      best, best_params = value, params
    print(f'[stop] epoch {epoch + 1}: valid objective {value:.4f}'
          f'{" *" if bad == 0 else ""}', flush=True)
    if bad >= config.train.patience:
      break
  return graphdef, best_params, stop_id, best


def event_times(graphdef, params, stop_id: int, prefixes, cut: float,
                      num_samples: int, seed: int) -> list[np.ndarray]:
  """Per prefix, [num_samples, M] times of the new events (inf after STOP)."""
  pool = 3 * num_samples
  cont = sampling.sample_continuations(
      graphdef, params, prefixes, num_samples=pool, max_events=stop_id,
      observed_until=[cut] * len(prefixes), seed=seed)
  n = max(len(p) for p in prefixes)
  arrays = [np.zeros((len(prefixes), n), dtype) for dtype in
            (np.int32, np.float32, bool)]
  for i, p in enumerate(prefixes):
    arrays[0][i, :len(p)] = p.users
    arrays[1][i, 1:len(p)] = np.diff(p.times)
    arrays[2][i, :len(p)] = True
  out = nnx.merge(graphdef, params)(*arrays, None)
  b_last = np.asarray(out.b)[np.arange(len(prefixes)),
                             [len(p) - 1 for p in prefixes]]
  silence = np.array([cut - p.times[-1] for p in prefixes])
  log_s = np.asarray(tpp.log_survival(silence, b_last, out.w))
  rng = np.random.default_rng(seed)
  result = []
  for i in range(len(prefixes)):
    users = cont.users[i * pool:(i + 1) * pool]
    stopped = np.cumsum(users == stop_id, axis=1) > 0
    times = np.where(stopped | (users < 0), np.inf,
                     cont.times[i * pool:(i + 1) * pool])
    weights = np.where(users[:, 0] == stop_id, 1.0, np.exp(log_s[i]))
    result.append(times[rng.choice(pool, num_samples,
                                   p=weights / weights.sum())])
  return result
