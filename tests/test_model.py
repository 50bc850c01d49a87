"""Tests for cyan_rcbm.cyan.model: shapes, attention window, masking, memory."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.cyan import model as model_lib

U, B, N, L = 12, 3, 10, 4


def _inputs(seed=0, b=B, n=N, num_users=U):
  rng = np.random.default_rng(seed)
  users = np.stack([rng.permutation(num_users)[:n] for _ in range(b)]
                   ).astype(np.int32)
  gaps = rng.exponential(size=(b, n)).astype(np.float32)
  gaps[:, 0] = 0
  mask = np.ones((b, n), bool)
  mask[1, 6:] = False
  return users, gaps, mask


def _model(variant, **kw):
  kw = dict(dict(embed_dim=4, encoder_hidden=6, decoder_hidden=5,
                 attention_size=3, coverage_size=2, dependence_length=L,
                 window_segments=1), **kw)
  return model_lib.CyanRNN(U, variant=variant, rngs=nnx.Rngs(0), **kw)


@functools.lru_cache(maxsize=None)
def _forward(variant, mask_active=True):
  """A jitted `(params, users, gaps, mask) -> Outputs` (alignments on)."""
  graphdef, params = nnx.split(_model(variant, mask_active=mask_active),
                               nnx.Param)
  fn = jax.jit(lambda p, *a: nnx.merge(graphdef, p)(
      *a, return_alignments=True))
  return params.to_pure_dict(), fn


@pytest.mark.parametrize('variant', model_lib.VARIANTS)
def test_shapes_and_normalised_user_law(variant):
  params, fn = _forward(variant)
  out = fn(params, *_inputs())
  chex.assert_shape(out.log_probs, (B, N, U))
  chex.assert_shape(out.b, (B, N))
  assert float(out.w) > 0
  np.testing.assert_allclose(jax.nn.logsumexp(out.log_probs, -1), 0,
                             atol=1e-5)
  if variant == 'rmtpp':
    assert out.alpha is None
  else:
    chex.assert_shape(out.alpha, (B, N, L))


@pytest.mark.parametrize('variant', ['cyan', 'cyan_cov'])
def test_attention_rows_sum_to_one_and_vanish_outside_the_window(variant):
  params, fn = _forward(variant)
  alpha = np.asarray(fn(params, *_inputs()).alpha)
  np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
  for k in range(N):
    # slot j is event k - L + 1 + j: slots before event 0 are exactly 0.
    assert np.all(alpha[:, k, :max(L - 1 - k, 0)] == 0.0)
    assert np.all(alpha[:, k, max(L - 1 - k, 0):] > 0.0)


def test_active_users_get_probability_zero():
  params, fn = _forward('cyan_cov')
  users, gaps, mask = _inputs()
  log_probs = np.asarray(fn(params, users, gaps, mask).log_probs)
  for b in range(B):
    for k in range(int(mask[b].sum())):
      assert np.all(np.exp(log_probs[b, k, users[b, :k + 1]]) == 0.0)
      others = np.setdiff1d(np.arange(U), users[b, :k + 1])
      assert np.all(np.exp(log_probs[b, k, others]) > 0.0)


def _memoryless(params, variant):
  """Params under which only the attention can carry information forward.

  GRU update gates are pinned to 0 (sigmoid(-200) == 0 exactly) and the
  recurrent kernels to 0, so `h_k` depends on `x_k` only and `T_k` on
  `(x_k, s_k)` only; the energies ignore `T`, and the coverage ignores
  `(alpha, T)`. Then the prediction at step k can depend only on the events
  in its window.
  """
  p = jax.tree.map(np.array, params)

  def pin(gru, hidden, extra=()):
    gru['w_rec'][:] = 0
    gru['w_in'][:, hidden:2 * hidden] = 0
    gru['b_in'][hidden:2 * hidden] = -200.0
    for w in extra:
      w[:, hidden:2 * hidden] = 0
  pin(p['encoder'], 6)
  pin(p['decoder'], 5, [p['dec_s']])
  p['att_w'][:] = 0
  if variant == 'cyan_cov':
    p['cov_t'][:] = 0
    p['cov_alpha'][:] = 0
  return p


@pytest.mark.parametrize('variant', ['cyan', 'cyan_cov'])
def test_prediction_depends_only_on_events_in_the_window(variant):
  params, fn = _forward(variant, mask_active=False)
  params = _memoryless(params, variant)
  users, gaps, mask = _inputs()
  base = fn(params, users, gaps, mask)
  k = 8  # window of step k: events k-L+1 .. k = 5..8
  for i, should_change in [(k - L, False), (k - L - 2, False),
                           (k - L + 1, True)]:
    changed = users.copy()
    changed[0, i] = (users[0, i] + 1) % U
    out = fn(params, changed, gaps, mask)
    same = (np.array_equal(out.log_probs[0, k], base.log_probs[0, k]) and
            np.array_equal(out.b[0, k], base.b[0, k]))
    assert same != should_change, (i, should_change)


def test_recurrent_kernels_are_orthogonal_blocks():
  w = np.asarray(_model('cyan').encoder.w_rec[...])
  for g in range(3):
    block = w[:, 6 * g:6 * (g + 1)]
    np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-5)


def test_event_nll_is_masked_and_matches_log_probs():
  params, fn = _forward('cyan')
  users, gaps, mask = _inputs()
  out = fn(params, users, gaps, mask)
  user_nll, time_nll, target = model_lib.event_nll(out, users, gaps, mask)
  assert target.sum() == mask[:, 1:].sum()
  assert np.all(np.asarray(user_nll)[~np.asarray(target)] == 0)
  b, k = 1, 2
  assert float(user_nll[b, k]) == pytest.approx(
      -float(out.log_probs[b, k, users[b, k + 1]]))


def test_bad_model_arguments_are_config_errors():
  with pytest.raises(errors.ConfigError, match='variant'):
    _model('lstm')
  with pytest.raises(errors.ConfigError, match='dependence_length'):
    _model('cyan', dependence_length=0)
  with pytest.raises(errors.ConfigError, match='coverage_cell'):
    _model('cyan_cov', coverage_cell='lstm')


def test_tanh_coverage_cell_and_calendar_inputs():
  m = _model('cyan_cov', coverage_cell='tanh', calendar_embed=2)
  graphdef, params = nnx.split(m, nnx.Param)
  fn = jax.jit(lambda p, *a: nnx.merge(graphdef, p)(*a))
  users, gaps, mask = _inputs()
  calendar = np.zeros((B, N, 7), np.int32)
  out = fn(params, users, gaps, mask, calendar)
  assert np.all(np.isfinite(np.asarray(out.b)))
  with pytest.raises(errors.ConfigError, match='calendar'):
    fn(params, users, gaps, mask, None)


def test_attention_memory_grows_linearly_with_cascade_length():
  """The window is gathered, never an N x N matrix (long Twitter cascades)."""
  m = _model('cyan_cov', dependence_length=16)
  graphdef, params = nnx.split(m, nnx.Param)

  def loss(p, users, gaps, mask):
    out = nnx.merge(graphdef, p)(users, gaps, mask)
    u, t, _ = model_lib.event_nll(out, users, gaps, mask)
    return jnp.sum(u + t)

  def temp_bytes(n):
    args = (jax.ShapeDtypeStruct((2, n), jnp.int32),
            jax.ShapeDtypeStruct((2, n), jnp.float32),
            jax.ShapeDtypeStruct((2, n), jnp.bool_))
    compiled = jax.jit(jax.grad(loss)).lower(params, *args).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  small, large = temp_bytes(256), temp_bytes(1024)
  assert large / small < 5.0  # linear: ~4; an N x N matrix would give ~16


@pytest.mark.parametrize('variant', ['cyan', 'cyan_cov'])
def test_growing_window_segments_give_identical_outputs(variant):
  users, gaps, mask = _inputs(n=12)
  outs = []
  for segments in (1, 3):
    m = _model(variant, dependence_length=8, window_segments=segments)
    graphdef, params = nnx.split(m, nnx.Param)
    outs.append(jax.jit(lambda p, *a, g=graphdef: nnx.merge(g, p)(
        *a, return_alignments=True))(params, users, gaps, mask))
  chex.assert_trees_all_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
