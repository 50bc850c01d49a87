"""One run per workdir: `hold(workdir)` keeps `workdir/run.lock` for a run.

The lock file is JSON with the holder's `pid`, `host`, `started` (UTC, ISO
8601) and, on Linux, `pid_start` (the process start time in clock ticks, so
that a reused pid is not taken for the holder). It is created atomically
(written to a temporary file, then hard-linked into place, which fails if a
lock exists) and removed when the run ends, however it ends except a kill.
A second run on a locked workdir stops with `WorkdirLocked` (one line: who
holds it since when, and what to do). A lock whose process is gone (same
host, pid not running or running another program) is stale: it is taken
over with a message. A lock from another host cannot be checked and is
never taken over.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys

from cyan_rcbm import errors
from cyan_rcbm.common.workdir import LOCK_FILE


class WorkdirLocked(errors.InputError):
  """Another run holds the workdir."""


def _pid_start(pid: int) -> int | None:
  """Start time of `pid` in clock ticks since boot (Linux), else None."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      stat = f.read()
  except OSError:
    return None
  # Field 22; fields after the parenthesised command name (which may hold
  # spaces) start at field 3.
  return int(stat[stat.rindex(')') + 2:].split()[19])


def _alive(pid: int, pid_start: int | None) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # someone else's process
  if pid_start is not None and _pid_start(pid) not in (None, pid_start):
    return False  # the pid now belongs to another process
  return True


def _describe(holder: dict) -> str:
  return (f'pid {holder.get("pid")} on host {holder.get("host")!r}, '
          f'started {holder.get("started")}')


def _read(path: str) -> dict | None:
  try:
    with open(path) as f:
      value = json.load(f)
    return value if isinstance(value, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # unreadable: treated as stale below if it is old


def _create(path: str, info: dict) -> bool:
  """Atomically creates `path` holding `info`; False if it exists."""
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'w') as f:
    json.dump(info, f)
    f.write('\n')
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  except OSError:  # no hard links here: exclusive create, then write
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, 'w') as f:
      json.dump(info, f)
      f.write('\n')
    return True
  finally:
    os.remove(tmp)


def acquire(workdir: str) -> str:
  """Takes the lock of `workdir` (created if needed); returns the lock path.

  Raises:
    WorkdirLocked: a live process (or another host) holds it.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  pid = os.getpid()
  info = {'pid': pid, 'host': socket.gethostname(),
          'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec='seconds'), 'pid_start': _pid_start(pid)}
  for _ in range(3):
    if _create(path, info):
      return path
    holder = _read(path)
    if holder is None:
      continue  # released meanwhile: try again
    same_host = holder.get('host') == info['host']
    pid_held = holder.get('pid')
    if holder and (not same_host or (isinstance(pid_held, int) and _alive(
        pid_held, holder.get('pid_start')))):
      where = '' if same_host else ' (another host: cannot check it)'
      raise WorkdirLocked(
          f'{workdir} is in use by another run ({_describe(holder)}){where}; '
          'wait for it to end or use another --workdir (if no such run '
          f'exists, delete {path}).')
    what = _describe(holder) if holder else 'unreadable'
    print(f'[workdir] taking over a stale lock ({what}: that process is '
          f'gone): {path}', file=sys.stderr, flush=True)
    try:
      os.remove(path)
    except FileNotFoundError:
      pass
  raise WorkdirLocked(f'could not take the lock {path}: other runs keep '
                      'taking it; use another --workdir.')


def release(path: str) -> None:
  """Removes the lock at `path` if this process still holds it."""
  holder = _read(path)
  if holder and holder.get('pid') == os.getpid():
    os.remove(path)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True):
  """Holds the lock of `workdir` for the `with` block (no-op if disabled:
  multi-host runs share one workdir by design)."""
  if not enabled:
    yield None
    return
  path = acquire(workdir)
  try:
    yield path
  finally:
    release(path)
