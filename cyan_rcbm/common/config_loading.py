"""Loading `configs/<file>.py[:variant]` outside of absl flags.

`load_config` is what tests, notebooks and library users call; `explain_flag_error`
turns a failure of `--config` / `--config.a.b=value` flag parsing into one
clear sentence (used by `cyan_rcbm.main`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Any, Sequence

import ml_collections

from cyan_rcbm import errors

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _resolve(path: str) -> str:
  if os.path.exists(path):
    return path
  in_repo = os.path.join(_REPO_ROOT, path)
  if os.path.exists(in_repo):
    return in_repo
  raise errors.ConfigError(f'config file {path!r} does not exist.')


def load_config(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
  """Loads `path[:variant]` like `--config=` does, then applies overrides.

  Args:
    spec: e.g. 'configs/cyan.py:tiny'. Relative paths are tried against the
      working directory, then against the repository root.
    **overrides: dotted field names with '__' for '.', e.g.
      `model__variant='rmtpp'`.
  """
  path, _, variant = spec.partition(':')
  path = _resolve(path)
  module_spec = importlib.util.spec_from_file_location(
      f'_cyan_rcbm_config_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(variant) if variant else module.get_config()
  except ValueError as e:
    raise errors.ConfigError(f'{spec}: {e}') from None
  for key, value in overrides.items():
    set_field(config, key.replace('__', '.'), value)
  return config


def set_field(config: ml_collections.ConfigDict, dotted: str, value: Any):
  """Sets `config.a.b = value`, with a clear error for unknown fields."""
  *parents, leaf = dotted.split('.')
  node = config
  for i, name in enumerate(parents):
    if name not in node:
      raise errors.ConfigError(_unknown(dotted, '.'.join(parents[:i]), node,
                                        name))
    node = node[name]
  if leaf not in node:
    raise errors.ConfigError(_unknown(dotted, '.'.join(parents), node, leaf))
  node[leaf] = value


def _unknown(dotted: str, where: str, node, name: str) -> str:
  fields = sorted(node.keys()) if hasattr(node, 'keys') else []
  scope = f'config.{where}' if where else 'config'
  return (f'unknown config field config.{dotted}: {scope} has no field '
          f'{name!r}; its fields are {fields}.')


_OVERRIDE = re.compile(r'^--config\.([A-Za-z0-9_.]+)(?:=.*)?$')


def explain_flag_error(argv: Sequence[str], error: Exception) -> str:
  """One sentence for a failed `--config...` parse."""
  spec = None
  for arg in argv:
    if arg.startswith('--config='):
      spec = arg.split('=', 1)[1]
  message = str(error)
  if spec is not None:
    try:
      config = load_config(spec)
    except errors.InputError as e:
      return str(e)
    except Exception as e:  # pylint: disable=broad-except
      return f'--config={spec}: {type(e).__name__}: {e}'
    for arg in argv:
      m = _OVERRIDE.match(arg)
      if not m:
        continue
      *parents, leaf = m.group(1).split('.')
      node = config
      for i, name in enumerate(parents + [leaf]):
        if not hasattr(node, 'keys') or name not in node:
          return _unknown(m.group(1), '.'.join((parents + [leaf])[:i]),
                          node, name)
        node = node[name]
  # A flag-value error (e.g. --config.seed=abc) already reads well; keep the
  # last line of anything that embeds a traceback.
  lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
  return lines[-1] if lines else repr(error)
