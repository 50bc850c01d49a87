"""The run directory: `config.json`, `metrics.jsonl` and progress output.

Every training run (CYAN or RCBM) writes the same files:

* `config.json`: the full config of the run. A resumed run must use the same
  config; a different one is an error (start a fresh workdir instead).
* `metrics.jsonl`: one JSON object per line, each with a `step` key;
* optionally `tensorboard/events.out.tfevents.*`: the same numbers as
  TensorBoard scalars (`tensorboard --logdir=WORKDIR`), when the run's config
  has `tensorboard = True` or the environment sets `CYAN_RCBM_TENSORBOARD=1`
  (needs the optional package `tensorboardX`: `pip install tensorboardX`).
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
LOCK_FILE = 'run.lock'           # held by a running run (common/workdir_lock.py)
METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'
TENSORBOARD_ENV = 'CYAN_RCBM_TENSORBOARD'
_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('0', 'false', 'no', 'off', '')
_warned_no_tensorboard = False


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


def tensorboard_requested(workdir: str) -> bool:
  """Whether a run in `workdir` also writes TensorBoard event files.

  `$CYAN_RCBM_TENSORBOARD` (1/true/yes/on or 0/false/no/off) decides when set;
  otherwise the `tensorboard` field of the run's `config.json` (False when
  absent).
  """
  env = os.environ.get(TENSORBOARD_ENV)
  if env is not None:
    value = env.strip().lower()
    if value in _TRUE:
      return True
    if value in _FALSE:
      return False
    raise errors.ConfigError(
        f'${TENSORBOARD_ENV}={env!r}: expected one of {_TRUE + _FALSE[:-1]}.')
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return False
  with open(path) as f:
    value = json.load(f).get('tensorboard', False)
  return bool(value)


def _summary_writer(logdir: str, purge_step: int | None):
  """A tensorboardX SummaryWriter, or None (with a one-line note) without it."""
  global _warned_no_tensorboard
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
  except ImportError:
    if not _warned_no_tensorboard:
      print('[metrics] TensorBoard output was requested but tensorboardX is '
            "not installed (pip install tensorboardX, or the 'tensorboard' "
            'extra); writing metrics.jsonl only.', file=sys.stderr, flush=True)
      _warned_no_tensorboard = True
    return None
  return tensorboardX.SummaryWriter(logdir, purge_step=purge_step,
                                    flush_secs=10)


def _scalar_tag(key: str) -> str:
  """'valid_acc@1' -> 'valid/acc_at_1' (TensorBoard groups tags by prefix and
  allows only [A-Za-z0-9_./-] in names)."""
  key = key.replace('@', '_at_')
  for prefix in ('train_', 'valid_', 'test_'):
    if key.startswith(prefix):
      return f'{prefix[:-1]}/{key[len(prefix):]}'
  return key


class MetricWriter:
  """Appends metrics to `workdir/metrics.jsonl` (one object per line).

  On resume from step `s`, `truncate_after(s)` drops lines written after the
  last checkpoint so that the curves of a resumed run equal those of an
  uninterrupted one. With TensorBoard output on (`tensorboard_requested`, or
  `tensorboard=True`), every finite number of a row is also written as a
  scalar to `workdir/tensorboard/`; after `truncate_after(s)` TensorBoard
  hides the older files' points beyond `s` (tensorboardX's `purge_step`).
  """

  def __init__(self, workdir: str, filename: str = METRICS_FILE,
               tensorboard: bool | None = None):
    self.path = os.path.join(workdir, filename)
    self.tensorboard_dir = os.path.join(workdir, TENSORBOARD_DIR)
    if tensorboard is None:
      tensorboard = tensorboard_requested(workdir)
    self._tensorboard_on = bool(tensorboard)
    self._summary = None      # created at the first write (after truncation)
    self._purge_step = None

  def write(self, step: int, **metrics: Any) -> None:
    record = {'step': int(step), **_to_jsonable(metrics)}
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._tensorboard_on:
      self._write_scalars(int(step), record)

  def _write_scalars(self, step: int, record: Mapping[str, Any]) -> None:
    if self._summary is None:
      self._summary = _summary_writer(self.tensorboard_dir, self._purge_step)
      if self._summary is None:
        self._tensorboard_on = False
        return
    for key, value in record.items():
      if (key != 'step' and isinstance(value, (int, float))
          and math.isfinite(value)):
        self._summary.add_scalar(_scalar_tag(key), float(value), step)
    self._summary.flush()

  def truncate_after(self, step: int) -> None:
    self._purge_step = int(step) + 1
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

  def close(self) -> None:
    """Closes the TensorBoard file (metrics.jsonl is closed after each row)."""
    if self._summary is not None:
      self._summary.close()
      self._summary = None


def _fmt_seconds(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
  """Readable one-line-per-report progress with rate and ETA.

  Lines look like
  `[cyan] step 120/800 (15%) | loss 3.21 | 85,000 events/s | elapsed 1m10s |
  ETA 1m02s`
  and are plain text (no carriage returns), so they stay readable in logs.
  The rate and the ETA are measured from the first report on, so that
  compilation during the first steps does not distort them; the first
  report has neither (only the elapsed time). Time passed to `exclude`
  (validation, checkpoints) does not count in the rate, so the rate is the
  speed of the work itself; the ETA keeps it (it is wall-clock).
  """

  def __init__(self, name: str, total: int | None, unit: str = 'steps',
               stream: TextIO | None = None, start: int = 0):
    self.name = name
    self.total = total
    self.unit = unit
    self.stream = stream or sys.stdout
    self._t0 = time.perf_counter()
    self._start = start
    self._work = None
    self._excluded = 0.0
    self._first = None  # (time, step, work, excluded) of the first report

  def exclude(self, seconds: float) -> None:
    """Leaves `seconds` of wall time out of the rate (not the ETA)."""
    self._excluded += max(float(seconds), 0.0)

  def report(self, step: int, work: float | None = None, **values: Any) -> str:
    """Prints one line. `work` counts units (e.g. events) done since start;
    without it, steps are the units."""
    now = time.perf_counter()
    if work is not None:
      self._work = float(work)
    done_work = self._work if self._work is not None else float(
        step - self._start)
    parts = [f'[{self.name}] step {step}']
    if self.total:
      parts[0] += f'/{self.total} ({100.0 * step / self.total:.0f}%)'
    for k, v in values.items():
      parts.append(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}')
    first = self._first
    steady = first is not None and step > first[1] and now > first[0]
    busy = (now - first[0]) - (self._excluded - first[3]) if steady else 0.0
    if steady and done_work > first[2] and busy > 0:
      rate = (done_work - first[2]) / busy
      parts.append(f'{rate:,.0f} {self.unit}/s' if rate >= 100 else
                   f'{rate:.3g} {self.unit}/s')
    parts.append(f'elapsed {_fmt_seconds(now - self._t0)}')
    if steady and self.total:
      left = max(self.total - step, 0)
      seconds = (now - first[0]) / (step - first[1]) * left
      parts.append(f'ETA {_fmt_seconds(seconds)}')
    if self._first is None:
      self._first = (now, step, done_work, self._excluded)
    line = ' | '.join(parts)
    print(line, file=self.stream, flush=True)
    return line


class FreshStart:
  """What a run found in its workdir, to undo a fresh start that failed.

  A fresh run (no `config.json` yet) that stops on a user error (or a
  non-finite loss) before its first checkpoint should leave nothing behind,
  so that the corrected command can run in the same workdir. `discard()`
  removes the files such a start writes (`config.json`, metrics files,
  empty folders) when they are new and nothing else was written; `remove_if_empty()` removes the workdir
  itself when this run created it and it is empty.
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.existed = os.path.isdir(workdir)
    self.before = set(os.listdir(workdir)) if self.existed else set()
    self.fresh = CONFIG_FILE not in self.before

  def _removable(self, name: str) -> bool:
    path = os.path.join(self.workdir, name)
    if os.path.isdir(path):
      return all(not files for _, _, files in os.walk(path))
    return name == CONFIG_FILE or name.endswith('.jsonl')

  def discard(self) -> None:
    if not self.fresh or not os.path.isdir(self.workdir):
      return
    new = set(os.listdir(self.workdir)) - self.before - {LOCK_FILE}
    if not all(self._removable(name) for name in new):
      return  # the run got further (a checkpoint, results): keep it all.
    for name in new:
      path = os.path.join(self.workdir, name)
      if os.path.isdir(path):
        for root, dirs, _ in os.walk(path, topdown=False):
          for d in dirs:
            os.rmdir(os.path.join(root, d))
        os.rmdir(path)
      else:
        os.remove(path)

  def remove_if_empty(self) -> None:
    if not self.existed and os.path.isdir(self.workdir):
      try:
        os.rmdir(self.workdir)
      except OSError:
        pass  # not empty: it holds a run
