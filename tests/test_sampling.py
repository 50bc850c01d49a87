"""Tests for cyan_rcbm.cyan.sampling and cyan_rcbm.cyan.event_step.

An untrained tiny model with perturbed heads (history-dependent user law and
gap law) stands in for a trained one: the sampler must reproduce whatever
law the model defines, which these tests check against the model's own
forward pass and closed forms.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

import cyan_rcbm as cr
from cyan_rcbm.cyan import event_step
from cyan_rcbm.cyan import recalibration
from cyan_rcbm.cyan import sampling
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching
from cyan_rcbm.data import types

U = 32


def _perturbed(variant='cyan_cov', seed=0):
  """A tiny model whose gap law depends on the history (b_k varies)."""
  config = cr.load_config('configs/cyan.py:tiny', model__variant=variant)
  model = cr.create_cyan(config, U, seed=seed)
  rng = np.random.default_rng(seed)
  p = jax.tree.map(np.asarray, model.params)
  p['time_w_in'] = rng.normal(0, 0.4, p['time_w_in'].shape).astype(np.float32)
  p['time_b'] = np.float32(-0.5)
  p['head']['kernel'] = p['head']['kernel'] * 3
  model.params = jax.tree.map(jnp.asarray, p)
  return model


@pytest.fixture(scope='module')
def model():
  return _perturbed()


def _prefix(n=5, seed=1, cid='p'):
  rng = np.random.default_rng(seed)
  users = rng.permutation(U)[:n].astype(np.int32)
  times = np.cumsum(np.r_[0.0, rng.exponential(0.5, n - 1)]) + 3.0
  return types.Cascade(id=cid, users=users, times=times)


def _next_law(model, prefix):
  """(probs over U with active users masked, b, w) from the full forward."""
  n = len(prefix)
  users = np.zeros((1, 8), np.int32)
  gaps = np.zeros((1, 8), np.float32)
  mask = np.zeros((1, 8), bool)
  users[0, :n] = prefix.users
  gaps[0, 1:n] = np.diff(prefix.times)
  mask[0, :n] = True
  net = nnx.merge(model.graphdef, model.params)
  out = net(users, gaps, mask)  # the model masks active users itself
  return (np.exp(np.asarray(out.log_probs[0, n - 1], np.float64)),
          float(out.b[0, n - 1]), float(out.w))


@pytest.mark.parametrize('variant', ['cyan_cov', 'cyan', 'rmtpp'])
def test_event_by_event_model_equals_the_full_forward_pass(variant):
  """next_event (prefix scan + heads) and one more _advance step vs __call__."""
  m = _perturbed(variant)
  rng = np.random.default_rng(0)
  users = rng.integers(0, U, (3, 16)).astype(np.int32)
  gaps = rng.exponential(1.0, (3, 16)).astype(np.float32)
  gaps[:, 0] = 0.0
  lengths = np.array([5, 16, 1])
  mask = np.arange(16)[None] < lengths[:, None]
  rows = np.arange(3)

  def run(params):
    net = nnx.merge(m.graphdef, params)
    net.mask_active = False
    full = net(users, gaps, mask)
    last = event_step.next_event(net, users, gaps, mask)
    # the first n-1 events as a prefix, then the n-th through advance.
    short = mask & (np.arange(16)[None] < lengths[:, None] - 1)
    state = event_step.read_prefix(net, users, gaps, short, None,
                                   event_step.window(net, 16))
    one_more = np.maximum(lengths - 1, 0)
    x = event_step.event_inputs(net, users[rows, one_more],
                                gaps[rows, one_more], None)
    state = event_step.advance(net, state, x, jnp.asarray(lengths > 1))
    return full, last, event_step.heads(net, state)

  full, last, stepped = jax.jit(run)(m.params)
  # the 1-event row has no event to add: its state is the 0-event one.
  pos = lengths - 1
  for got in (last, stepped):
    got_rows = rows if got is last else rows[:2]
    np.testing.assert_allclose(jax.nn.log_softmax(got.logits[got_rows]),
                               full.log_probs[got_rows, pos[got_rows]],
                               atol=1e-5)
    np.testing.assert_allclose(got.b[got_rows], full.b[got_rows,
                                                       pos[got_rows]],
                               atol=1e-5)
    assert float(got.w) == pytest.approx(float(full.w))


def test_calendar_fields_match_numpy():
  rng = np.random.default_rng(0)
  stamps = np.floor(np.concatenate([
      rng.uniform(0, 2.9e9, 2000),  # 1970 .. 2061, leap years included
      [0.0, 951782400.0, 951868799.0, 1709164800.0, 4102444799.0]]))
  days = np.floor(stamps / 86400)
  # seconds past midnight of an earlier day: the function carries them over.
  shift = rng.integers(0, 3, stamps.shape)
  got = event_step.calendar_from_days(
      jnp.asarray(days - shift, jnp.int32),
      jnp.asarray(stamps - days * 86400 + shift * 86400, jnp.float32))
  want = batching.calendar_fields(stamps)
  np.testing.assert_array_equal(np.asarray(got), want)


def test_samples_are_valid_continuations(model):
  prefix = _prefix(6)
  horizon = 4.0
  out = model.sample(prefix, num_samples=64, max_events=20, horizon=horizon,
                     seed=3)
  assert len(out) == 64
  t_n = prefix.times[-1]
  new_events = 0
  for c in out:
    n = len(prefix)
    np.testing.assert_array_equal(c.users[:n], prefix.users)  # prefix kept
    np.testing.assert_array_equal(c.times[:n], prefix.times)
    assert len(c) <= n + 20
    assert len(np.unique(c.users)) == len(c)  # no repeated user
    assert np.all(np.diff(c.times) >= 0)
    if len(c) > n:
      assert c.times[n] > t_n
      assert c.times[-1] <= t_n + horizon
    assert np.all((c.users >= 0) & (c.users < U))
    new_events += len(c) - n
  assert new_events > 64  # the horizon leaves room for several events


def test_same_seed_same_samples_other_seed_differs(model):
  prefix = _prefix(6)
  kw = dict(num_samples=64, max_events=20, horizon=4.0)
  a = model.sample(prefix, seed=3, **kw)
  b = model.sample(prefix, seed=3, **kw)
  c = model.sample(prefix, seed=4, **kw)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.users, y.users)
    np.testing.assert_array_equal(x.times, y.times)
  assert any(len(x) != len(y) or not np.array_equal(x.users, y.users)
             for x, y in zip(a, c))


def test_horizon_and_observed_until(model):
  prefix = _prefix(6)
  t_n = float(prefix.times[-1])
  out = model.sample(prefix, num_samples=64, max_events=20, horizon=1.5,
                     observed_until=t_n + 2.0, seed=0)
  firsts = [c.times[6] for c in out if len(c) > 6]
  assert firsts and min(firsts) > t_n + 2.0
  assert max(c.times[-1] for c in out) <= t_n + 3.5
  # max_events caps the continuation when there is no horizon.
  capped = model.sample(prefix, num_samples=64, max_events=20, seed=0)
  assert all(len(c) == 26 for c in capped)


def test_first_event_follows_the_model_law(model):
  """Users: chi-square against the masked softmax; gaps: KS against Eq. 2."""
  prefix = _prefix(5)
  probs, b, w = _next_law(model, prefix)
  t_n = float(prefix.times[-1])
  for d0 in (0.0, 0.7):
    cont = sampling.sample_continuations(
        model.graphdef, model.params, [prefix], num_samples=2000,
        max_events=1, observed_until=[t_n + d0], seed=11)
    assert np.all(cont.counts == 1)
    counts = np.bincount(cont.users[:, 0], minlength=U)
    assert counts[prefix.users].sum() == 0  # active users never drawn
    keep = probs > 0
    expected = probs[keep] / probs[keep].sum() * 2000
    assert stats.chisquare(counts[keep], expected).pvalue > 1e-3
    gap = cont.times[:, 0] - t_n
    a = math.exp(b) / w
    # P(d <= x | d > d0) = 1 - exp(-a (e^{w x} - e^{w d0})).
    cdf = lambda x, d0=d0: 1 - np.exp(-a * (np.exp(w * x) - np.exp(w * d0)))
    assert gap.min() > d0
    assert stats.kstest(gap, cdf).pvalue > 1e-3
  # the unconditional mean matches the closed form E[d] (Eq. 2).
  cont = sampling.sample_continuations(
      model.graphdef, model.params, [prefix], num_samples=2000, max_events=1,
      seed=12)
  gap = cont.times[:, 0] - t_n
  sem = gap.std() / math.sqrt(len(gap))
  assert abs(gap.mean() - float(tpp.expected_gap(b, w))) < 4 * sem


def test_without_masking_users_repeat_and_with_all_active_it_stops(model):
  prefix = _prefix(6)
  free = model.sample(prefix, num_samples=64, max_events=20, mask_active=False,
                      seed=0)
  assert all(len(c) == 26 for c in free)  # no horizon: always max_events
  assert any(len(np.unique(c.users)) < len(c) for c in free)
  # 31 of 32 users active: one more event at most, then every user is active.
  full = types.Cascade(id='all', users=np.arange(31, dtype=np.int32),
                       times=np.linspace(0.0, 3.0, 31))
  out = model.sample(full, num_samples=64, max_events=5, seed=0)
  assert all(len(c) == 32 and c.users[-1] == 31 for c in out)
  forecast = model.forecast_size(full, horizon=math.inf, num_samples=64,
                                 max_events=5)
  assert forecast.lower == forecast.upper == 32 and forecast.truncated == 0


def test_size_forecast_is_calibrated_when_the_model_is_the_truth(model):
  """Truth drawn from the model itself; forecasts from its cut prefixes.

  Checks the 90% interval's coverage and the uniformity of the randomised
  PIT of the true size under the sampled law (a discrete-data calibration
  test): both fail if conditioning on the observation window, the horizon,
  or the continuation of a prefix is wrong.
  """
  horizon, cut, num = 6.0, 2.0, 160
  roots = [types.Cascade(id=str(i), users=np.array([i % U], np.int32),
                         times=np.zeros(1)) for i in range(num)]
  # the first of 200 samples per root: the forecasts' shapes, one compile.
  truth = sampling.sample_continuations(
      model.graphdef, model.params, roots, num_samples=200, max_events=U - 1,
      horizon=horizon, seed=100)
  full = [sampling.continuation_cascades(r, truth, [200 * i])[0]
          for i, r in enumerate(roots)]
  sizes = np.array([len(c) for c in full])
  assert sizes.std() > 1.5  # a non-trivial spread of outcomes
  prefixes = [cr.observed_prefix(c, cut) for c in full]
  forecasts = model.forecast_sizes(
      prefixes, horizon=horizon - cut, observed_until=[cut] * num,
      num_samples=200, level=0.9, seed=7)
  covered = np.mean([f.covers(s) for f, s in zip(forecasts, sizes)])
  pit = recalibration.randomised_pit([f.samples for f in forecasts], sizes,
                                     np.random.default_rng(0))
  assert all(f.truncated == 0 for f in forecasts)
  assert 0.84 <= covered <= 0.99, covered
  assert stats.kstest(pit, 'uniform').pvalue > 1e-3


def test_size_forecast_summary():
  sizes = np.array([[3] * 4 + [4] * 91 + [9] * 5])
  (f,) = sampling.size_forecasts(sizes, np.array([3]), np.zeros((1, 100)),
                                 level=0.9, horizon=2.0)
  assert (f.lower, f.upper, f.median) == (4, 4, 4.0)
  assert f.mean == pytest.approx(4.21)
  (g,) = sampling.size_forecasts(sizes, np.array([3]), np.zeros((1, 100)),
                                 level=0.98, horizon=2.0)
  assert (g.lower, g.upper) == (3, 9)


def test_observed_prefix():
  c = types.Cascade(id='c', users=np.array([4, 2, 7], np.int32),
                    times=np.array([0.0, 1.0, 2.5]),
                    parents=np.array([-1, 0, 1], np.int32))
  assert len(cr.observed_prefix(c, 1.0)) == 2
  assert len(cr.observed_prefix(c, -1.0)) == 1
  assert cr.observed_prefix(c, 9.0).parents.tolist() == [-1, 0, 1]


def test_bad_sampling_arguments(model):
  prefix = _prefix(4)
  bad = [dict(num_samples=0, max_events=3), dict(num_samples=2.5, max_events=3),
         dict(num_samples=2, max_events=0), dict(num_samples=2, max_events=True),
         dict(num_samples=2, max_events=3, horizon=-1.0),
         dict(num_samples=2, max_events=3, horizon='5'),
         dict(num_samples=2, max_events=3, seed=-1),
         dict(num_samples=2, max_events=3, observed_until=0.0)]
  for kw in bad:
    with pytest.raises(cr.InputError):
      model.sample(prefix, **kw)
  with pytest.raises(cr.InputError, match='level'):
    model.forecast_size(prefix, horizon=1.0, level=1.0)
  with pytest.raises(cr.InputError, match='horizon'):
    model.forecast_size(prefix, horizon=0.0)


def test_calendar_model_samples_carry_timestamps():
  config = cr.load_config('configs/cyan.py:tiny', data__time_scale=3600.0)
  m = cr.create_cyan(config, U, calendar=True)
  prefix = _prefix(4)
  stamps = 1.7e9 + (prefix.times - prefix.times[0]) * 3600.0
  prefix = types.Cascade(id='p', users=prefix.users, times=prefix.times,
                         timestamps=stamps)
  out = m.sample(prefix, num_samples=64, max_events=20, horizon=4.0, seed=0)
  assert any(len(c) > 4 for c in out)
  for c in out:
    np.testing.assert_allclose(
        c.timestamps, stamps[-1] + (c.times - prefix.times[-1]) * 3600.0)
  with pytest.raises(cr.InputError, match='timestamps'):
    m.sample(_prefix(4), num_samples=2, max_events=2)
