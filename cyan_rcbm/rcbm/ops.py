"""The scale-and-copy operator and its deconvolution (equations.md B2; paper
Eqs. 2, 8).

Filters `W_k in R^{D x Tw}`, activations `h_k in R^S` with `S = T + Tw - 1`:

* scale-and-copy (Eq. 2), a true "valid" convolution per row, summed over k:
  `(W (x) h)[d, t] = sum_k sum_tau W[k, d, tau] h[k, t + Tw - 1 - tau]`;
* deconvolution (Eq. 8), its adjoint (rows summed):
  `(W (.) R)[k, s] = sum_d sum_tau W[k, d, tau] R[d, s - Tw + 1 + tau]`,
  R zero outside `[0, T)`;
* filter correlation, the W-gradient of Eq. 7 up to sign:
  `C[k, d, tau] = sum_i sum_t R_i[d, t] h_ik[t + Tw - 1 - tau]`.

Each operator has several equivalent *forms*, selected by name:

* `'rows'` — the reference: D x K 1-D `lax.conv`s over rows, vmapped.
* `'conv'` — one multi-channel 1-D convolution (K in, D out), channels last
  (XLA:CPU hands it to XNNPACK, which wants channel counts that are
  multiples of 8: `cbm_layout` pads the features when a solver uses it).
* `'unfold'` — a matrix product over unfolded time windows.
* `'fft'` — products of real FFTs along time.
* `'block'` — blocks of `b = max(Tw, 8)` output steps as one dense matrix
  product with the banded block `[(b + Tw - 1) K, b D]` of the operator:
  ~`(b + Tw - 1) / Tw` times the multiply-adds of `'conv'`, but a GEMM.
* `'blockt'` — the transpose of `'block'`: the *input* is cut into
  non-overlapping blocks of b steps (a reshape, no window copies), each
  block times the dense `[b K, (b + Tw - 1) D]` matrix of the outputs it
  reaches, and the `Tw - 1` outputs that spill into the neighbouring block
  are added to it (`b >= Tw - 1`; b divides the length where it can).

`'auto'` takes `'blockt'` for both operators: one FISTA iteration of the
h-step on 10,000 samples of K=10, D=7, T=60, Tw=7 (chunks of 500) costs
~25% less CPU time than with `'block'` scale-and-copy and `'conv'`
deconvolution, and ~30% less at the level-2 shape (D=10, T=33)
(`scripts/bench_rcbm.py` times every form).

Two layouts: the public functions take the canonical layout of the papers
(`h_NxKxS`, `x_NxDxT`); the `*_tm` functions take the time-major layout
(`h_NxSxK`, `x_NxTxD`) that the solvers use internally (it avoids transposes
in the hot loop). Everything is jittable, dtype-preserving (float32 by
default, float64 when JAX x64 is on) and batched over samples.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from cyan_rcbm.common import precision

FORMS = ('rows', 'conv', 'unfold', 'fft', 'block', 'blockt')
_AUTO = {'conv': 'blockt', 'deconv': 'blockt'}

_DN = ('NHC', 'HIO', 'NHC')  # channels-last 1-D convolution.


def resolve_form(form: str, op: str) -> str:
  """Maps `'auto'` to the fastest form of `op` ('conv' = scale-and-copy,
  'deconv') and checks the name."""
  if form == 'auto':
    return _AUTO[op]
  if form not in FORMS:
    raise ValueError(f'unknown operator form {form!r}; expected one of '
                     f"{('auto',) + FORMS}")
  return form


# ---------------------------------------------------------------------------
# Time-major forms: w [K, D, Tw], h [N, S, K], x / r [N, T, D].


def _conv_rows(w_KxDxTw, h_NxSxK):
  def one_row(w_Tw, h_S):  # 1-D valid convolution of one (k, d) pair.
    return lax.conv_general_dilated(
        h_S[None, None], w_Tw[::-1][None, None], (1,), 'VALID')[0, 0]

  over_d = jax.vmap(one_row, in_axes=(0, None))            # -> [D, T]
  over_k = jax.vmap(over_d, in_axes=(0, 1))                # -> [K, D, T]
  over_n = jax.vmap(over_k, in_axes=(None, 0))             # -> [N, K, D, T]
  return jnp.swapaxes(over_n(w_KxDxTw, h_NxSxK).sum(axis=1), 1, 2)


def _deconv_rows(w_KxDxTw, r_NxTxD):
  tw = w_KxDxTw.shape[-1]

  def one_row(w_Tw, r_T):  # full correlation of one (k, d) pair.
    return lax.conv_general_dilated(
        r_T[None, None], w_Tw[None, None], (1,), [(tw - 1, tw - 1)])[0, 0]

  over_d = jax.vmap(one_row, in_axes=(0, 1))               # -> [D, S]
  over_k = jax.vmap(over_d, in_axes=(0, None))             # -> [K, D, S]
  over_n = jax.vmap(over_k, in_axes=(None, 0))             # -> [N, K, D, S]
  return jnp.swapaxes(over_n(w_KxDxTw, r_NxTxD).sum(axis=2), 1, 2)


def _conv_conv(w_KxDxTw, h_NxSxK):
  rhs_TwxKxD = jnp.transpose(w_KxDxTw[..., ::-1], (2, 0, 1))
  return lax.conv_general_dilated(h_NxSxK, rhs_TwxKxD, (1,), 'VALID',
                                  dimension_numbers=_DN)


def _deconv_conv(w_KxDxTw, r_NxTxD):
  tw = w_KxDxTw.shape[-1]
  rhs_TwxDxK = jnp.transpose(w_KxDxTw, (2, 1, 0))
  return lax.conv_general_dilated(r_NxTxD, rhs_TwxDxK, (1,),
                                  [(tw - 1, tw - 1)], dimension_numbers=_DN)


def _windows(a_NxLxC, size, count):
  """a[:, t + j, :] as [N, count, size, C] (t < count, j < size)."""
  idx = jnp.arange(count)[:, None] + jnp.arange(size)[None, :]
  return a_NxLxC[:, idx, :]


def _conv_unfold(w_KxDxTw, h_NxSxK):
  tw = w_KxDxTw.shape[-1]
  t = h_NxSxK.shape[1] - tw + 1
  win_NxTxTwxK = _windows(h_NxSxK, tw, t)
  return jnp.einsum('ntjk,kdj->ntd', win_NxTxTwxK, w_KxDxTw[..., ::-1])


def _deconv_unfold(w_KxDxTw, r_NxTxD):
  tw = w_KxDxTw.shape[-1]
  s = r_NxTxD.shape[1] + tw - 1
  padded = jnp.pad(r_NxTxD, ((0, 0), (tw - 1, tw - 1), (0, 0)))
  win_NxSxTwxD = _windows(padded, tw, s)
  return jnp.einsum('nsjd,kdj->nsk', win_NxSxTwxD, w_KxDxTw)


def _fft_size(n):
  return 1 << max(0, (n - 1).bit_length())


def _conv_fft(w_KxDxTw, h_NxSxK):
  tw = w_KxDxTw.shape[-1]
  s = h_NxSxK.shape[1]
  t = s - tw + 1
  size = _fft_size(s + tw - 1)
  h_f = jnp.fft.rfft(h_NxSxK, n=size, axis=1)
  w_f = jnp.fft.rfft(w_KxDxTw, n=size, axis=2)
  y = jnp.fft.irfft(jnp.einsum('nfk,kdf->nfd', h_f, w_f), n=size, axis=1)
  return y[:, tw - 1:tw - 1 + t].astype(h_NxSxK.dtype)


def _deconv_fft(w_KxDxTw, r_NxTxD):
  tw = w_KxDxTw.shape[-1]
  t = r_NxTxD.shape[1]
  size = _fft_size(t + tw - 1)
  # Correlation = convolution with the time-reversed filter.
  r_f = jnp.fft.rfft(r_NxTxD, n=size, axis=1)
  w_f = jnp.fft.rfft(w_KxDxTw[..., ::-1], n=size, axis=2)
  y = jnp.fft.irfft(jnp.einsum('nfd,kdf->nfk', r_f, w_f), n=size, axis=1)
  return y[:, :t + tw - 1].astype(r_NxTxD.dtype)


def _block_size(tw: int) -> int:
  return max(tw, 8)


def _tap_matrix(w_KxDxTw, tap_RxC, adjoint: bool):
  """The dense matrix `M[(r, k), (c, d)] = W[k, d, tap[r, c]]` (scale-and-copy,
  `[R K, C D]`) or `M[(r, d), (c, k)]` (`adjoint`, `[R D, C K]`), zero where
  the tap falls outside `[0, Tw)`."""
  k, d, tw = w_KxDxTw.shape
  rows, cols = tap_RxC.shape
  inside = (tap_RxC >= 0) & (tap_RxC < tw)
  vals_KxDxRxC = jnp.where(inside,
                           w_KxDxTw[:, :, jnp.clip(tap_RxC, 0, tw - 1)], 0)
  if not adjoint:
    return jnp.transpose(vals_KxDxRxC, (2, 0, 3, 1)).reshape(rows * k, cols * d)
  return jnp.transpose(vals_KxDxRxC, (2, 1, 3, 0)).reshape(rows * d, cols * k)


def _banded_block(w_KxDxTw, rows: int, cols: int, adjoint: bool):
  """One block of the operator as a dense matrix.

  scale-and-copy: `M[(s, k), (t, d)] = W[k, d, Tw - 1 - (s - t)]`, shape
  `[rows K, cols D]`; deconvolution (`adjoint`): `M[(j, d), (i, k)] =
  W[k, d, j - i]`, shape `[rows D, cols K]`; zero outside the band.
  """
  tw = w_KxDxTw.shape[-1]
  lag = jnp.arange(rows)[:, None] - jnp.arange(cols)[None, :]
  return _tap_matrix(w_KxDxTw, lag if adjoint else tw - 1 - lag, adjoint)


def _block_windows(a_NxLxC, count: int, step: int, size: int):
  """`[N * count, size * C]`: windows `a[:, j step : j step + size]`."""
  n, _, c = a_NxLxC.shape
  win = jnp.stack([a_NxLxC[:, j * step:j * step + size] for j in range(count)],
                  axis=1)
  return win.reshape(n * count, size * c)


def _block(w_KxDxTw, a_NxLxC, adjoint: bool):
  """`'block'` form of scale-and-copy (h -> x) or, `adjoint`, of the
  deconvolution (r -> g, r zero-padded by Tw - 1 on both sides): windows of
  `b + Tw - 1` input steps times `_banded_block`, b outputs each."""
  k, d, tw = w_KxDxTw.shape
  n, length, _ = a_NxLxC.shape
  b = _block_size(tw)
  out_length = length + tw - 1 if adjoint else length - tw + 1
  count = -(-out_length // b)
  front = tw - 1 if adjoint else 0
  a_pad = jnp.pad(a_NxLxC, ((0, 0), (front, count * b + tw - 1 - length -
                                     front), (0, 0)))
  out = (_block_windows(a_pad, count, b, b + tw - 1) @
         _banded_block(w_KxDxTw, b + tw - 1, b, adjoint))
  return out.reshape(n, count * b, k if adjoint else d)[:, :out_length]


_conv_block = functools.partial(_block, adjoint=False)
_deconv_block = functools.partial(_block, adjoint=True)


def _input_block_size(length: int, tw: int) -> int:
  """Block of `'blockt'`: >= Tw - 1 (a block's spill-over reaches only the
  next block), dividing `length` if possible (no padding), small."""
  low = max(tw - 1, 4)
  sizes = range(low, max(2 * tw, 12) + 1)
  return min(sizes, key=lambda b: (-(-length // b) * b, b))


def _spill_matrix(w_KxDxTw, b: int, adjoint: bool):
  """The operator from one input block of b steps to the b + Tw - 1 output
  steps it reaches, as a dense matrix.

  scale-and-copy: input `h[jb + i]`, output `x[jb - Tw + 1 + u]`,
  `M[(i, k), (u, d)] = W[k, d, u - i]`, shape `[b K, (b + Tw - 1) D]`;
  deconvolution (`adjoint`): input `r[jb + u]`, output `g[jb + i]`,
  `M[(u, d), (i, k)] = W[k, d, Tw - 1 - i + u]`, `[b D, (b + Tw - 1) K]`.
  """
  tw = w_KxDxTw.shape[-1]
  rows, cols = jnp.arange(b)[:, None], jnp.arange(b + tw - 1)[None, :]
  return _tap_matrix(w_KxDxTw, tw - 1 - cols + rows if adjoint else
                     cols - rows, adjoint)


def _blocks_in(a_NxLxC, b: int):
  """Non-overlapping blocks `[N * nb, b C]` (zero-padded to nb * b steps)."""
  n, length, c = a_NxLxC.shape
  nb = -(-length // b)
  if nb * b != length:
    a_NxLxC = jnp.pad(a_NxLxC, ((0, 0), (0, nb * b - length), (0, 0)))
  return a_NxLxC.reshape(n * nb, b * c), nb


def _overlap_add(out_NxBxUxC, b: int, spill: int, spill_first: bool):
  """Sums per-block outputs of b + spill steps into one sequence.

  Each block's outputs cover its own b steps plus `spill` steps of the
  previous block (`spill_first`: they come first) or of the next one.
  Returns `[N, nb * b, C]` (before: the previous block's spill of block 0
  is dropped) or `[N, (nb + 1) * b, C]` (after).
  """
  n, nb, _, c = out_NxBxUxC.shape
  if spill_first:
    own = out_NxBxUxC[:, :, spill:].reshape(n, nb * b, c)
    tails = jnp.pad(out_NxBxUxC[:, :, :spill],
                    ((0, 0), (0, 0), (b - spill, 0), (0, 0)))
    tails = tails.reshape(n, nb * b, c)[:, b:]
    return own + jnp.pad(tails, ((0, 0), (0, b), (0, 0)))
  own = out_NxBxUxC[:, :, :b].reshape(n, nb * b, c)
  tails = jnp.pad(out_NxBxUxC[:, :, b:],
                  ((0, 0), (0, 0), (0, b - spill), (0, 0))).reshape(n, nb * b, c)
  return (jnp.pad(own, ((0, 0), (0, b), (0, 0))) +
          jnp.pad(tails, ((0, 0), (b, 0), (0, 0))))


def _blockt(w_KxDxTw, a_NxLxC, adjoint: bool):
  """`'blockt'` form of scale-and-copy (h -> x) or, `adjoint`, of the
  deconvolution (r -> g): input blocks times `_spill_matrix`, then the
  spill-over added to the neighbouring blocks."""
  k, d, tw = w_KxDxTw.shape
  n, length, _ = a_NxLxC.shape
  b = _input_block_size(length, tw)
  blocks, nb = _blocks_in(a_NxLxC, b)
  out = (blocks @ _spill_matrix(w_KxDxTw, b, adjoint)).reshape(
      n, nb, b + tw - 1, k if adjoint else d)
  out_length = length + tw - 1 if adjoint else length - tw + 1
  return _overlap_add(out, b, tw - 1, spill_first=not adjoint)[:, :out_length]


_conv_blockt = functools.partial(_blockt, adjoint=False)
_deconv_blockt = functools.partial(_blockt, adjoint=True)


_CONV = {'rows': _conv_rows, 'conv': _conv_conv, 'unfold': _conv_unfold,
         'fft': _conv_fft, 'block': _conv_block, 'blockt': _conv_blockt}
_DECONV = {'rows': _deconv_rows, 'conv': _deconv_conv,
           'unfold': _deconv_unfold, 'fft': _deconv_fft,
           'block': _deconv_block, 'blockt': _deconv_blockt}


@precision.exact
def conv_tm(w_KxDxTw: jax.Array, h_NxSxK: jax.Array, form: str = 'auto'
            ) -> jax.Array:
  """Scale-and-copy (Eq. 2) in the time-major layout: returns x_NxTxD."""
  return _CONV[resolve_form(form, 'conv')](w_KxDxTw, h_NxSxK)


@precision.exact
def deconv_tm(w_KxDxTw: jax.Array, r_NxTxD: jax.Array, form: str = 'auto'
              ) -> jax.Array:
  """Deconvolution (Eq. 8) in the time-major layout: returns g_NxSxK."""
  return _DECONV[resolve_form(form, 'deconv')](w_KxDxTw, r_NxTxD)


@precision.exact
def correlate_tm(r_NxTxD: jax.Array, h_NxSxK: jax.Array, filter_length: int,
                 form: str = 'auto') -> jax.Array:
  """Filter correlation `C[k, d, tau]` (module doc), time-major inputs.

  `C` is the adjoint of `w -> conv_tm(w, h)` applied to `r`, so
  `grad_W 1/2 ||X - W (x) h||^2 = -correlate_tm(X - W (x) h, h)` (Eq. 7).
  """
  fwd = _CONV[resolve_form(form, 'conv')]
  w0 = jnp.zeros((h_NxSxK.shape[-1], r_NxTxD.shape[-1], filter_length),
                 r_NxTxD.dtype)
  _, vjp = jax.vjp(lambda w: fwd(w, h_NxSxK), w0)
  return vjp(r_NxTxD)[0]


# ---------------------------------------------------------------------------
# Canonical layout: w [K, D, Tw], h [N, K, S], x / r [N, D, T].


def _check(w, other, other_name, other_axis_name):
  if w.ndim != 3:
    raise ValueError(f'filters must have shape [K, D, Tw]; got {w.shape}')
  if other.ndim != 3:
    raise ValueError(f'{other_name} must have rank 3 [N, {other_axis_name}, '
                     f'time]; got shape {other.shape}')


@functools.partial(jax.jit, static_argnames=('form',))
def scale_and_copy(w_KxDxTw: jax.Array, h_NxKxS: jax.Array,
                   form: str = 'auto') -> jax.Array:
  """`sum_k W_k (x) h_k` for every sample (Eq. 2): x_NxDxT, `T = S - Tw + 1`."""
  _check(w_KxDxTw, h_NxKxS, 'activations', 'K')
  if h_NxKxS.shape[1] != w_KxDxTw.shape[0]:
    raise ValueError(f'activations have {h_NxKxS.shape[1]} rows for '
                     f'{w_KxDxTw.shape[0]} filters')
  if h_NxKxS.shape[2] < w_KxDxTw.shape[2]:
    raise ValueError(f'activations of length {h_NxKxS.shape[2]} are shorter '
                     f'than the filters ({w_KxDxTw.shape[2]})')
  x_NxTxD = conv_tm(w_KxDxTw, jnp.swapaxes(h_NxKxS, 1, 2), form)
  return jnp.swapaxes(x_NxTxD, 1, 2)


@functools.partial(jax.jit, static_argnames=('form',))
def deconvolve(w_KxDxTw: jax.Array, r_NxDxT: jax.Array, form: str = 'auto'
               ) -> jax.Array:
  """`W (.) R` (Eq. 8), the adjoint of `scale_and_copy`: g_NxKxS."""
  _check(w_KxDxTw, r_NxDxT, 'residuals', 'D')
  if r_NxDxT.shape[1] != w_KxDxTw.shape[1]:
    raise ValueError(f'residuals have {r_NxDxT.shape[1]} features for '
                     f'filters with {w_KxDxTw.shape[1]}')
  g_NxSxK = deconv_tm(w_KxDxTw, jnp.swapaxes(r_NxDxT, 1, 2), form)
  return jnp.swapaxes(g_NxSxK, 1, 2)


@functools.partial(jax.jit, static_argnames=('filter_length', 'form'))
def correlate(r_NxDxT: jax.Array, h_NxKxS: jax.Array, filter_length: int,
              form: str = 'auto') -> jax.Array:
  """Filter correlation `C_KxDxTw` (module doc); `grad_W f1 = -C` (Eq. 7)."""
  return correlate_tm(jnp.swapaxes(r_NxDxT, 1, 2), jnp.swapaxes(h_NxKxS, 1, 2),
                      filter_length, form)


def operator_pair(form: str = 'auto') -> tuple[Callable, Callable]:
  """(conv_tm, deconv_tm) bound to `form` (each its own for 'auto')."""
  return (functools.partial(conv_tm, form=resolve_form(form, 'conv')),
          functools.partial(deconv_tm, form=resolve_form(form, 'deconv')))
