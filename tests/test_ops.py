"""Tests for cyan_rcbm.rcbm.ops (equations.md B2: Eqs. 2, 8 and their forms)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cyan_rcbm.data.planted import convolve
from cyan_rcbm.rcbm import ops

# (K, D, Tw, T, N): odd sizes, Tw = 1, the paper's level-1 shape (K=10, D=7,
# Tw=7, T=60) and a level-2-like one.
SHAPES = [(3, 2, 4, 9, 2), (1, 1, 1, 5, 3), (10, 7, 7, 60, 2),
          (4, 10, 3, 33, 3)]


def _draw(shape, seed, dtype=np.float32):
  k, d, tw, t, n = shape
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((k, d, tw)).astype(dtype)
  h = rng.standard_normal((n, k, t + tw - 1)).astype(dtype)
  r = rng.standard_normal((n, d, t)).astype(dtype)
  return w, h, r


def _correlate_reference(r, h, tw):
  n, d, t = r.shape
  out = np.zeros((h.shape[1], d, tw))
  for tau in range(tw):
    # C[k, d, tau] = sum_i sum_t R[i, d, t] h[i, k, t + Tw - 1 - tau]
    window = h[:, :, tw - 1 - tau:tw - 1 - tau + t]
    out[:, :, tau] = np.einsum('idt,ikt->kd', r, window)
  return out


@pytest.mark.parametrize('form', ops.FORMS)
@pytest.mark.parametrize('shape', SHAPES)
def test_forms_match_reference_and_are_adjoint(form, shape):
  """Every form equals the numpy reference (so all forms agree), and
  <W (x) h, R> = <h, W (.) R> = <W, C(R, h)> to float32 tolerance."""
  w, h, r = _draw(shape, 0)
  x = ops.scale_and_copy(w, h, form=form)
  g = ops.deconvolve(w, r, form=form)
  c = ops.correlate(r, h, shape[2], form=form)
  np.testing.assert_allclose(x, convolve(w, h), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(c, _correlate_reference(r, h, shape[2]),
                             rtol=1e-4, atol=1e-4)
  lhs = float(jnp.vdot(x, r))
  scale = float(np.abs(convolve(np.abs(w), np.abs(h))).sum() * np.abs(r).max())
  assert abs(lhs - float(jnp.vdot(h, g))) <= 1e-5 * scale
  assert abs(lhs - float(jnp.vdot(w, c))) <= 1e-5 * scale


@pytest.mark.parametrize('form', ops.FORMS)
def test_float64_under_x64(form):
  with jax.enable_x64(True):
    w, h, r = _draw((3, 2, 4, 9, 2), 3, np.float64)
    x = ops.scale_and_copy(jnp.asarray(w), jnp.asarray(h), form=form)
    g = ops.deconvolve(jnp.asarray(w), jnp.asarray(r), form=form)
    assert x.dtype == jnp.float64 and g.dtype == jnp.float64
    np.testing.assert_allclose(x, convolve(w, h), rtol=1e-11, atol=1e-11)
    assert abs(float(jnp.vdot(x, r)) - float(jnp.vdot(h, g))) < 1e-10
  assert not jax.config.jax_enable_x64
  assert ops.scale_and_copy(w.astype(np.float32), h.astype(np.float32),
                            form=form).dtype == jnp.float32


def test_time_major_matches_canonical():
  w, h, r = _draw((3, 2, 4, 9, 2), 4)
  x_tm = ops.conv_tm(w, np.swapaxes(h, 1, 2))
  np.testing.assert_allclose(np.swapaxes(x_tm, 1, 2),
                             ops.scale_and_copy(w, h), rtol=1e-5, atol=1e-5)
  g_tm = ops.deconv_tm(w, np.swapaxes(r, 1, 2))
  np.testing.assert_allclose(np.swapaxes(g_tm, 1, 2), ops.deconvolve(w, r),
                             rtol=1e-5, atol=1e-5)


def test_bad_arguments():
  w, h, r = _draw((3, 2, 4, 9, 2), 5)
  with pytest.raises(ValueError, match='unknown operator form'):
    ops.scale_and_copy(w, h, form='winograd')
  with pytest.raises(ValueError, match=r'\[K, D, Tw\]'):
    ops.scale_and_copy(w[0], h)
  with pytest.raises(ValueError, match='rows for 3 filters'):
    ops.scale_and_copy(w, h[:, :2])
  with pytest.raises(ValueError, match='shorter than the filters'):
    ops.scale_and_copy(w, h[:, :, :3])
  with pytest.raises(ValueError, match='features for filters'):
    ops.deconvolve(w, r[:, :1])
  assert ops.resolve_form('auto', 'conv') in ops.FORMS
  assert ops.resolve_form('auto', 'deconv') in ops.FORMS
