"""Precision policy of matmuls and convolutions (float32 inputs).

On a GPU, XLA runs float32 contractions in TF32 (10-bit mantissa) unless it
is told otherwise, and on a TPU in bfloat16. The library's algorithms assume
float32 arithmetic: FISTA's monotone objective and the closed-form step
bounds of RCBM (`cbm_step.lipschitz_h`, `lipschitz_w`), the likelihoods and
the CYAN time-law head. So the library computes in float32 by default and a
user opts into the hardware's faster precision with `config.precision`:

* `'float32'` (default): `Precision.HIGHEST`, float32-exact on every backend.
* `'fast'`: `Precision.DEFAULT`, the backend's own choice (TF32 on recent
  NVIDIA GPUs, bfloat16 passes on TPU; the same float32 as 'float32' on CPU).

The policy is JAX's `jax_default_matmul_precision` setting, so it is part of
the key of every `jax.jit` cache: a function traced under one policy is
traced again under the other. Library functions that contract arrays are
wrapped in `exact`, which fills in `'highest'` when nothing is set; `scope`
sets the policy for a whole run (`train_and_evaluate`, via `from_config`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, TypeVar

import jax

from cyan_rcbm import errors

POLICIES = {'float32': 'highest', 'fast': 'default'}
DEFAULT_POLICY = 'float32'

_F = TypeVar('_F', bound=Callable[..., Any])


def check_policy(policy: str, field: str = 'config.precision') -> str:
  """`policy` if it is one of `POLICIES`, else a `ConfigError` naming `field`."""
  if policy not in POLICIES:
    raise errors.ConfigError(
        f'{field} is {policy!r}; expected one of {sorted(POLICIES)} '
        "('float32': exact float32 contractions, 'fast': the backend's "
        'default, e.g. TF32 on a GPU).')
  return policy


def current() -> str:
  """The policy in force: 'float32' unless something lowered the precision."""
  value = jax.config.jax_default_matmul_precision
  if value is None or value in ('highest', 'float32', 'F32_F32_F32'):
    return 'float32'
  return 'fast'


@contextlib.contextmanager
def scope(policy: str) -> Iterator[None]:
  """Runs the body (its traces and compiles) under `policy`."""
  with jax.default_matmul_precision(POLICIES[check_policy(policy)]):
    yield


def exact(fn: _F) -> _F:
  """Wraps `fn` so that it traces with float32 contractions by default.

  A precision the caller set (through `scope('fast')` or JAX's own
  `jax.default_matmul_precision`) is kept; only the unset default, which on a
  GPU means TF32, becomes `'highest'`.
  """

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    if jax.config.jax_default_matmul_precision is not None:
      return fn(*args, **kwargs)
    with jax.default_matmul_precision(POLICIES[DEFAULT_POLICY]):
      return fn(*args, **kwargs)

  return wrapped  # type: ignore[return-value]


def policy_of(config) -> str:
  """`config.precision`, checked; configs saved before the field: float32."""
  policy = config.get('precision', DEFAULT_POLICY)
  return check_policy(policy)


def from_config(train_and_evaluate: _F) -> _F:
  """Wraps `train_and_evaluate(config, workdir, ...)` in `scope(config.precision)`."""

  @functools.wraps(train_and_evaluate)
  def wrapped(config, *args, **kwargs):
    with scope(policy_of(config)):
      return train_and_evaluate(config, *args, **kwargs)

  return wrapped  # type: ignore[return-value]
