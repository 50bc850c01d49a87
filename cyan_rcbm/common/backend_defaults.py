"""Backend-aware values of config fields set to `'auto'`.

Work sizes tuned for a 2-core CPU's cache leave a GPU idle, and the reverse
sizes overflow a CPU's cache. A field set to `'auto'` takes its value from
`TABLE` for the backend `jax.default_backend()` reports ('cpu' or an
accelerator: 'gpu', 'cuda', 'rocm', 'tpu'). An int (or bool) in the field is
used as given.

| field                         | cpu  | accelerator | what it sets                       |
|-------------------------------|------|-------------|------------------------------------|
| `model.batch_size` (RCBM)     | 500  | 262144      | samples per FISTA chunk            |
| `eval.infer_batch_size` (RCBM)| 2000 | 262144      | samples per inference batch        |
| `batching.eval_batch_size`    | 256  | 4096        | cascades per evaluation batch      |
| `batching.max_buckets`        | 0    | 4           | padded lengths compiled (0: all)   |
| `model.remat` (None = auto)   | cyan_cov | False   | recompute decoder steps (backward) |
| sampling rows per call        | 8192 | 65536       | `sampling.sample_continuations`    |

On the CPU the values are the ones measured fastest on 2 cores (RCBM:
FISTA iteration at n=10,000 39 ms with chunks of 500 vs 48 ms with 2000;
CYAN(cov): remat 1.8x faster). On an accelerator one chunk holds 262,144
samples (at K=10, Tw=7, T=60 an activation array is 69 MB), so a FISTA
iteration at n=100,000 is one kernel sequence instead of 200; the CYAN
training batch size stays the paper's 128 (a hyper-parameter, not a speed
setting) and only evaluation and sampling grow. Fewer bucket shapes mean
fewer compilations (the twitter config compiles one train step per shape)
at the price of more padding, which an accelerator absorbs.

`resolved(train_and_evaluate)` replaces the 'auto' fields of a run's config
with their values before the run starts (so `config.json` records what ran)
and logs each one.
"""

from __future__ import annotations

import copy
import functools
from importlib import metadata
import math
from typing import Any, Callable, Sequence, TypeVar

from absl import logging
import jax
import ml_collections
from ml_collections import config_dict

from cyan_rcbm import errors

AUTO = 'auto'
ACCELERATORS = ('gpu', 'cuda', 'rocm', 'tpu')

# field -> (cpu value, accelerator value).
TABLE: dict[str, tuple[Any, Any]] = {
    'model.batch_size': (500, 262144),
    'eval.infer_batch_size': (2000, 262144),
    'batching.eval_batch_size': (256, 4096),
    'batching.max_buckets': (0, 4),
    'sampling.max_rows': (8192, 65536),
}

_F = TypeVar('_F', bound=Callable[..., Any])


def auto_field() -> config_dict.FieldReference:
  """A config field that holds 'auto' or an int (command line: either)."""
  return config_dict.FieldReference(AUTO, field_type=object)


def backend() -> str:
  """'cpu' or 'accelerator', from `jax.default_backend()`."""
  return 'accelerator' if jax.default_backend() in ACCELERATORS else 'cpu'


def resolve(value: Any, field: str, name: str = '') -> int:
  """`value` as an int >= 0; 'auto' becomes `TABLE[field]` for the backend.

  Raises:
    ConfigError: `value` is neither 'auto' nor a non-negative int; the
      message names `name` (a flag, say), else `field`.
  """
  if isinstance(value, str) and value.strip().lower() == AUTO:
    cpu, accel = TABLE[field]
    return accel if backend() == 'accelerator' else cpu
  try:
    number = int(value)
    ok = number >= 0 and float(value) == number and not isinstance(value, bool)
  except (TypeError, ValueError):
    ok = False
  if not ok:
    raise errors.ConfigError(
        f'{name or field} is {value!r}; expected {AUTO!r} or an int >= 0.')
  return number


def remat(variant: str, value: bool | None = None) -> bool:
  """`model.remat`: as given, or (None) on for cyan_cov on the CPU only."""
  if value is not None:
    return bool(value)
  return variant == 'cyan_cov' and backend() == 'cpu'


def cap_buckets(lengths: Sequence[int], max_buckets: int) -> tuple[int, ...]:
  """At most `max_buckets` of the sorted `lengths`, the longest always kept.

  The kept lengths are spread evenly over the list's positions, which for
  geometric bucket lengths is even in log-length (0: all lengths).
  """
  lengths = tuple(sorted(int(n) for n in lengths))
  if max_buckets <= 0 or len(lengths) <= max_buckets:
    return lengths
  if max_buckets == 1:
    return lengths[-1:]
  step = (len(lengths) - 1) / (max_buckets - 1)
  keep = sorted({int(math.floor(i * step + 0.5)) for i in range(max_buckets)})
  return tuple(lengths[i] for i in keep)


def _get(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split('.'):
    if part not in node:
      return None
    node = node[part]
  return node


def resolve_config(config: ml_collections.ConfigDict
                   ) -> ml_collections.ConfigDict:
  """A copy of `config` whose 'auto' fields (`TABLE`) hold their values."""
  out = copy.deepcopy(config)  # keeps the fields' types (int or 'auto')
  for dotted in TABLE:
    value = _get(out, dotted)
    if value is None:
      continue
    new = resolve(value, dotted)
    if new != value:
      parent, name = dotted.rsplit('.', 1)
      _get(out, parent)[name] = new
      logging.info('%s = %s (auto on %s, backend %s)', dotted, new,
                   backend(), jax.default_backend())
      print(f'[backend] {dotted} = {new} ({AUTO} on {jax.default_backend()})',
            flush=True)
  return out


def resolved(train_and_evaluate: _F) -> _F:
  """Wraps `train_and_evaluate(config, ...)` to run on `resolve_config(config)`."""

  @functools.wraps(train_and_evaluate)
  def wrapped(config, *args, **kwargs):
    return train_and_evaluate(resolve_config(config), *args, **kwargs)

  return wrapped  # type: ignore[return-value]


def environment() -> dict[str, str]:
  """Backend, device name and library versions (for benchmark reports)."""
  out = {'backend': jax.default_backend(),
         'device_kind': jax.devices()[0].device_kind,
         'device_count': str(jax.device_count())}
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint'):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = 'not installed'
  return out
