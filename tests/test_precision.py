"""Tests for cyan_rcbm.common.precision: the policy reaches the contractions."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import precision
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.rcbm import cbm_step
from cyan_rcbm.rcbm import ops


def _draw(k=3, d=2, tw=4, t=9, n=2):
  rng = np.random.default_rng(0)
  return (rng.standard_normal((k, d, tw)).astype(np.float32),
          rng.standard_normal((n, k, t + tw - 1)).astype(np.float32))


def _hlo(fn, *args, **kwargs) -> str:
  return jax.jit(fn, static_argnames=tuple(kwargs)).lower(
      *args, **kwargs).as_text()


@pytest.mark.parametrize('form', ['unfold', 'conv', 'rows', 'block'])
def test_operators_lower_with_highest_precision_by_default(form):
  w, h = _draw()
  assert 'HIGHEST' in _hlo(ops.scale_and_copy, w, h, form=form)
  with precision.scope('fast'):
    assert 'HIGHEST' not in _hlo(ops.scale_and_copy, w, h, form=form)


def test_fast_and_float32_agree_on_cpu():
  w, h = _draw(10, 7, 7, 60, 3)
  exact = ops.scale_and_copy(w, h, form='unfold')
  with precision.scope('fast'):
    fast = ops.scale_and_copy(w, h, form='unfold')
  np.testing.assert_allclose(fast, exact, rtol=1e-6, atol=1e-6)


def test_step_bound_traces_with_highest_precision():
  w, _ = _draw()
  assert 'HIGHEST' in str(jax.make_jaxpr(cbm_step.lipschitz_h)(w))


def test_exact_keeps_a_precision_the_caller_set():
  f = precision.exact(lambda a, b: a @ b)
  a = jnp.ones((4, 4))
  assert 'HIGHEST' in str(jax.make_jaxpr(f)(a, a))
  with jax.default_matmul_precision('tensorfloat32'):
    text = str(jax.make_jaxpr(f)(a, a))
  assert 'HIGHEST' not in text and 'HIGH' in text


def test_cyan_model_forward_traces_with_highest_precision():
  cfg = config_loading.load_config('configs/cyan.py:tiny').model
  graphdef, params = model_lib.init_params(cfg, 10, calendar=False)
  users = jnp.zeros((2, 8), jnp.int32)
  gaps = jnp.ones((2, 8), jnp.float32)
  mask = jnp.ones((2, 8), bool)
  fwd = lambda p: nnx.merge(graphdef, p)(users, gaps, mask).log_probs
  assert 'HIGHEST' in str(jax.make_jaxpr(fwd)(params))


def test_from_config_sets_the_policy_and_names_a_bad_value():
  seen = []
  run = precision.from_config(lambda config, workdir: seen.append(
      precision.current()))
  run(ml_collections.ConfigDict({'precision': 'fast'}), '')
  run(ml_collections.ConfigDict({'precision': 'float32'}), '')
  assert seen == ['fast', 'float32']
  assert precision.current() == 'float32'
  with pytest.raises(errors.ConfigError, match='config.precision'):
    run(ml_collections.ConfigDict({'precision': 'tf32'}), '')
