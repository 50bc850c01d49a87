"""The run directory: `config.json`, `metrics.jsonl` and progress output.

Every training run (CYAN or RCBM) writes the same files:

* `config.json`: the full config of the run. A resumed run must use the same
  config; a different one is an error (start a fresh workdir instead).
* `metrics.jsonl`: one JSON object per line, each with a `step` key.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Mapping, TextIO

import ml_collections
import numpy as np

from cyan_rcbm import errors

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'


def _to_jsonable(value: Any) -> Any:
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): _to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_to_jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if hasattr(value, 'shape') and hasattr(value, 'dtype'):  # jax.Array
    return np.asarray(value).tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return None if math.isnan(value) else (
        'inf' if value > 0 else '-inf')
  return value


def dump_json(value: Any, path: str, indent: int | None = 2) -> None:
  """Writes `value` (configs, numpy/jax scalars allowed) as JSON atomically."""
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    json.dump(_to_jsonable(value), f, indent=indent, sort_keys=False)
    f.write('\n')
  os.replace(tmp, path)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> bool:
  """Creates `workdir` and writes `config.json`.

  Returns:
    True when the workdir already held a run with the same config (the caller
    should try to resume), False for a fresh run.

  Raises:
    ConfigError: the workdir holds a run with a different config.
  """
  if not workdir:
    raise errors.ConfigError('--workdir is required.')
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  current = _to_jsonable(config)
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != current:
      changed = sorted(_diff_keys(previous, current))
      raise errors.ConfigError(
          f'{path} holds a run with a different config (differs at: '
          f'{", ".join(changed[:10])}). Use a new --workdir, or delete the '
          'old one to start over.')
    return True
  dump_json(current, path)
  return False


def _diff_keys(a: Any, b: Any, prefix: str = '') -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in set(a) | set(b):
      out += _diff_keys(a.get(k), b.get(k), f'{prefix}{k}.')
    return out
  return [] if a == b else [prefix.rstrip('.') or '<root>']


class MetricWriter:
  """Appends metrics to `workdir/metrics.jsonl` (one object per line).

  On resume from step `s`, `truncate_after(s)` drops lines written after the
  last checkpoint so that the curves of a resumed run equal those of an
  uninterrupted one.
  """

  def __init__(self, workdir: str, filename: str = METRICS_FILE):
    self.path = os.path.join(workdir, filename)

  def write(self, step: int, **metrics: Any) -> None:
    record = {'step': int(step), **_to_jsonable(metrics)}
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')

  def truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [line for line in f if line.strip()]
    keep = [r for r in rows if json.loads(r).get('step', 0) <= step]
    with open(self.path, 'w') as f:
      f.writelines(keep)

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


def _fmt_seconds(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
  """Readable one-line-per-report progress with rate and ETA.

  Lines look like
  `[cyan] step 120/800 (15%) | loss 3.21 | 85,000 events/s | ETA 1m02s`
  and are plain text (no carriage returns), so they stay readable in logs.
  """

  def __init__(self, name: str, total: int | None, unit: str = 'steps',
               stream: TextIO | None = None, start: int = 0):
    self.name = name
    self.total = total
    self.unit = unit
    self.stream = stream or sys.stdout
    self._t0 = time.perf_counter()
    self._start = start
    self._work = 0.0

  def report(self, step: int, work: float | None = None, **values: Any) -> str:
    """Prints one line. `work` counts units (e.g. events) done since start."""
    elapsed = time.perf_counter() - self._t0
    if work is not None:
      self._work = work
    parts = [f'[{self.name}] step {step}']
    if self.total:
      parts[0] += f'/{self.total} ({100.0 * step / self.total:.0f}%)'
    for k, v in values.items():
      parts.append(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}')
    if elapsed > 0 and self._work:
      parts.append(f'{self._work / elapsed:,.0f} {self.unit}/s')
    done = step - self._start
    if self.total and done > 0:
      parts.append(
          f'ETA {_fmt_seconds(elapsed / done * (self.total - step))}')
    line = ' | '.join(parts)
    print(line, file=self.stream, flush=True)
    return line
