"""Tests for cyan_rcbm.common.workdir_lock and workdir.FreshStart."""

import json
import os
import socket
import subprocess
import sys

import pytest

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.common import workdir_lock


def _lock_file(workdir, **fields):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'run.lock'), 'w') as f:
    json.dump({'host': socket.gethostname(), 'started': 'then', **fields}, f)


def test_lock_holds_pid_host_and_start_and_is_released(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lock.hold(workdir) as path:
    with open(path) as f:
      info = json.load(f)
    assert info['pid'] == os.getpid()
    assert info['host'] == socket.gethostname()
    assert info['started'].endswith('+00:00')
    assert info['pid_start'] == workdir_lock._pid_start(os.getpid())
    with pytest.raises(workdir_lock.WorkdirLocked, match='in use by another '
                       f'run \\(pid {os.getpid()} on host'):
      workdir_lock.acquire(workdir)
  assert os.listdir(workdir) == []
  with pytest.raises(RuntimeError):  # released on an exception too
    with workdir_lock.hold(workdir):
      raise RuntimeError()
  assert os.listdir(workdir) == []


def test_a_dead_or_reused_pid_is_stale_and_taken_over(tmp_path, capsys):
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  _lock_file(str(tmp_path / 'dead'), pid=proc.pid)
  workdir_lock.release(workdir_lock.acquire(str(tmp_path / 'dead')))
  assert f'taking over a stale lock (pid {proc.pid} on host' in (
      capsys.readouterr().err)
  # this process's pid, but another start time: a reused pid.
  _lock_file(str(tmp_path / 'reused'), pid=os.getpid(), pid_start=1)
  workdir_lock.release(workdir_lock.acquire(str(tmp_path / 'reused')))
  assert 'taking over a stale lock' in capsys.readouterr().err
  # an unreadable lock file is taken over too.
  (tmp_path / 'junk').mkdir()
  (tmp_path / 'junk' / 'run.lock').write_text('{not json')
  workdir_lock.release(workdir_lock.acquire(str(tmp_path / 'junk')))
  assert 'taking over a stale lock (unreadable' in capsys.readouterr().err


def test_a_lock_from_another_host_is_never_taken(tmp_path):
  _lock_file(str(tmp_path), pid=1, host='elsewhere')
  with pytest.raises(workdir_lock.WorkdirLocked,
                     match="host 'elsewhere'.*another host: cannot check"):
    workdir_lock.acquire(str(tmp_path))


def test_release_leaves_another_process_lock_alone(tmp_path):
  _lock_file(str(tmp_path), pid=os.getpid() + 1)
  workdir_lock.release(str(tmp_path / 'run.lock'))
  assert os.path.exists(tmp_path / 'run.lock')


def test_fresh_start_discards_only_what_a_failed_start_wrote(tmp_path):
  workdir = str(tmp_path / 'run')
  start = workdir_lib.FreshStart(workdir)
  os.makedirs(os.path.join(workdir, 'checkpoints'))
  for name in ('config.json', 'metrics.jsonl'):
    (tmp_path / 'run' / name).write_text('{}\n')
  start.discard()
  start.remove_if_empty()
  assert not os.path.exists(workdir)
  # a run that got as far as a checkpoint keeps everything.
  start = workdir_lib.FreshStart(workdir)
  os.makedirs(os.path.join(workdir, 'checkpoints', '4'))
  (tmp_path / 'run' / 'checkpoints' / '4' / 'meta').write_text('{}')
  (tmp_path / 'run' / 'config.json').write_text('{}\n')
  start.discard()
  assert sorted(os.listdir(workdir)) == ['checkpoints', 'config.json']
  # a resumed run (config.json there before) is never touched.
  (tmp_path / 'old').mkdir()
  (tmp_path / 'old' / 'config.json').write_text('{}\n')
  (tmp_path / 'old' / 'mine.txt').write_text('user file')
  start = workdir_lib.FreshStart(str(tmp_path / 'old'))
  start.discard()
  start.remove_if_empty()
  assert sorted(os.listdir(tmp_path / 'old')) == ['config.json', 'mine.txt']
