"""JAX's persistent compilation cache, on by default, and compile-time report.

A run compiles its train steps once per batch shape (CYAN) or per level and
chunk layout (RCBM); on a GPU the CYAN twitter config spends minutes there.
With the persistent cache, a rerun or a resumed run in the same environment
(same JAX, backend and device) loads the executables instead.

`config.compilation_cache` picks the folder:

* `'auto'` (default): `jax/` in the library's cache folder (that of the
  generated data sets: `$CYAN_RCBM_CACHE`, else `~/.cache/cyan_rcbm`); a
  folder JAX was already given (`JAX_COMPILATION_CACHE_DIR`) is kept;
* `'workdir'`: `<workdir>/jax_cache`;
* `'off'` (or ''): no persistent cache;
* any other string: that folder.

Only programs that took at least `MIN_COMPILE_SECONDS` to compile are
written. `active(config, workdir)` enables the cache for the body and prints
one line at its end: compile seconds, programs compiled and cache hits. The
cache must be set before the process's first compilation (the CLI does it
first thing); later, JAX keeps the choice it made at its first compile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from typing import Iterator

from absl import logging
import jax
from jax import monitoring

from cyan_rcbm import errors

FIELD = 'compilation_cache'
ENV = 'CYAN_RCBM_CACHE'
WORKDIR_CACHE = 'jax_cache'
MIN_COMPILE_SECONDS = 0.5
_OFF = ('off', '', 'none', 'false')
_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_HIT_EVENT = '/jax/compilation_cache/cache_hits'
_SAVED_EVENT = '/jax/compilation_cache/compile_time_saved_sec'


def user_cache_dir() -> str:
  """`$CYAN_RCBM_CACHE/jax`, else `~/.cache/cyan_rcbm/jax`."""
  base = os.environ.get(ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'cyan_rcbm')
  return os.path.join(os.path.expanduser(base), 'jax')


def cache_dir(setting: str, workdir: str = '') -> str | None:
  """The folder of `setting` (module docstring); None when off."""
  if not isinstance(setting, str):
    raise errors.ConfigError(
        f'config.{FIELD} is {setting!r}; expected a folder, '
        "'auto', 'workdir' or 'off'.")
  value = setting.strip()
  if value.lower() in _OFF:
    return None
  if value.lower() == 'auto':
    return jax.config.jax_compilation_cache_dir or user_cache_dir()
  if value.lower() == 'workdir':
    if not workdir:
      raise errors.ConfigError(
          f"config.{FIELD} = 'workdir' needs a --workdir.")
    return os.path.join(workdir, WORKDIR_CACHE)
  return os.path.expanduser(value)


def enable(setting: str, workdir: str = '',
           min_compile_seconds: float = MIN_COMPILE_SECONDS) -> str | None:
  """Points JAX's persistent cache at `cache_dir(setting, workdir)`."""
  path = cache_dir(setting, workdir)
  if path is None:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise errors.ConfigError(
        f'config.{FIELD}: cannot create the cache folder {path}: {e}'
    ) from None
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs',
                    float(min_compile_seconds))
  return path


@dataclasses.dataclass
class CompileStats:
  """Compile seconds, programs and persistent-cache hits seen so far."""
  seconds: float = 0.0
  programs: int = 0
  hits: int = 0
  saved_seconds: float = 0.0

  def line(self, path: str | None) -> str:
    where = f'cache {path}' if path else 'persistent cache off'
    return (f'[jax] compiled {self.programs} programs in {self.seconds:.1f} s '
            f'({self.hits} loaded from the {where}, '
            f'{self.saved_seconds:.1f} s saved)')


_lock = threading.Lock()
_stats = CompileStats()
_listening = False


def _on_duration(event: str, duration: float, **_) -> None:
  with _lock:
    if event == _COMPILE_EVENT:
      _stats.seconds += duration
      _stats.programs += 1
    elif event == _SAVED_EVENT:
      _stats.saved_seconds += max(duration, 0.0)


def _on_event(event: str, **_) -> None:
  if event == _HIT_EVENT:
    with _lock:
      _stats.hits += 1


def stats() -> CompileStats:
  """A snapshot of the process's compile totals (listeners start on first use)."""
  global _listening
  with _lock:
    if not _listening:
      monitoring.register_event_duration_secs_listener(_on_duration)
      monitoring.register_event_listener(_on_event)
      _listening = True
    return dataclasses.replace(_stats)


@contextlib.contextmanager
def active(config, workdir: str = '') -> Iterator[str | None]:
  """Enables the cache of `config.compilation_cache`; reports at the end."""
  setting = config.get(FIELD, 'auto')  # configs saved before the field: auto
  path = enable(setting, workdir)
  before = stats()
  try:
    yield path
  finally:
    after = stats()
    delta = CompileStats(after.seconds - before.seconds,
                         after.programs - before.programs,
                         after.hits - before.hits,
                         after.saved_seconds - before.saved_seconds)
    logging.info('%s', delta.line(path))
    print(delta.line(path), flush=True)
