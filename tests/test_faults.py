"""Faults on purpose, through the command line (`cyan_rcbm.main`).

Each test runs one wrong input or one fault (an ignored option, a bad file,
a damaged checkpoint, a second run on a workdir, a kill -9) and checks the
exit status, the message and the files left in the workdir. `main` runs in
this process where it can; a kill runs it in a subprocess.
"""

import contextlib
import gc
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl import logging

from cyan_rcbm import main
from cyan_rcbm.common import workdir_lock
from cyan_rcbm.rcbm import io as rcbm_io

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small runs: RMTPP on 80 cascades (8 steps, a checkpoint every 2) and a
# 2-level RCBM without figures, BIC or restarts.
CYAN = ['--config=configs/cyan.py:tiny', '--config.model.variant=rmtpp',
        '--config.data.num_cascades=80', '--config.train.checkpoint_every=2']
RCBM = ['--config=configs/rcbm.py:tiny', '--config.plots=False',
        '--config.eval.bic_num_filters=()', '--config.model.num_restarts=1']
OWN_FILE = ['--config=configs/cyan.py:tiny', '--config.model.variant=rmtpp',
            "--config.data.name=", '--config.data.format=jsonl',
            '--config.data.num_cascades=0']


def _reset_flags():
  """Flags as before any parse (the override flags of a parse removed)."""
  flags.FLAGS.unparse_flags()
  for name in list(flags.FLAGS):
    if name.startswith('config.'):
      delattr(flags.FLAGS, name)


def cli(*args):
  """(exit status, stdout, stderr) of `python -m cyan_rcbm.main ARGS`."""
  argv = ['cyan_rcbm.main', *args]
  out, err = io.StringIO(), io.StringIO()
  old_argv, verbosity = sys.argv, logging.get_verbosity()
  sys.argv = argv  # config_flags reads the overrides from sys.argv
  _reset_flags()
  code = 0
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      main.main([argv[0]] + main._parse_flags(argv)[1:])
  except SystemExit as e:
    code = e.code
  finally:
    sys.argv = old_argv
    _reset_flags()
    logging.set_verbosity(verbosity)  # main quiets absl logging
  return code, out.getvalue(), err.getvalue()


def files(workdir):
  if not os.path.isdir(workdir):
    return None
  return sorted(os.listdir(workdir))


def write_cascades(path, num, seed=0, with_ids=False):
  """`num` random jsonl cascades of 2-6 events over 32 users (as the
  synthetic sets: the same compiled train step)."""
  rng = np.random.default_rng(seed)
  with open(path, 'w') as f:
    for i in range(num):
      n = int(rng.integers(2, 7))
      row = {'users': [str(u) for u in rng.choice(32, n, replace=False)],
             'times': np.cumsum(rng.exponential(1.0, n)).round(6).tolist()}
      if with_ids:
        row = {'id': f'c{i}', **row}
      f.write(json.dumps(row) + '\n')


@pytest.mark.parametrize('args, wanted', [
    (RCBM + ['--config.data.path=mine.npz'],
     "config.data.path='mine.npz' is set, but this run ignores it: only "
     "data.source='path' (here data.source='planted') reads it; add "
     "--config.data.source=path to read your file, or drop data.path."),
    (['--config=configs/rcbm.py:synthetic', '--config.data.path=mine.npz'],
     '--config.data.source=path'),
    (['--config=configs/cyan.py:tiny', '--config.data.path=mine.jsonl'],
     "config.data.path='mine.jsonl' is set, but this run ignores it: only a "
     "file of your own (data.name=''; here data.name='synthetic_cp_exp', a "
     "built-in set) reads it; add --config.data.name='' to read your file"),
    (CYAN + ['--config.model.coverage_size=7'],
     "only model.variant='cyan_cov' reads it"),
    (OWN_FILE[:-1] + ['--config.data.path=x.jsonl'],
     'data.num_cascades=240 applies only to the synthetic_* sets'),
])
def test_config_errors_exit_2_and_write_nothing(tmp_path, args, wanted):
  workdir = str(tmp_path / 'run')
  code, _, err = cli(*args, f'--workdir={workdir}')
  assert code == 2 and wanted in err, err
  assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err
  assert files(workdir) is None
  os.makedirs(workdir)  # an existing, empty workdir stays empty
  assert cli(*args, f'--workdir={workdir}')[0] == 2
  assert files(workdir) == []


def test_a_failed_fresh_start_leaves_nothing_and_the_fix_runs(tmp_path):
  """A config error, a missing file, then the corrected command (a file
  without "id"s) in the same workdir."""
  workdir, path = str(tmp_path / 'run'), str(tmp_path / 'mine.jsonl')
  write_cascades(path, 60)
  code, _, err = cli(*OWN_FILE[:-1], f'--config.data.path={path}',
                     f'--workdir={workdir}')
  assert code == 2 and 'data.num_cascades=240 applies only' in err
  assert files(workdir) is None
  code, _, err = cli(*OWN_FILE, f'--config.data.path={tmp_path}/nope.jsonl',
                     f'--workdir={workdir}')
  assert code == 2 and 'nope.jsonl: no such file' in err
  assert files(workdir) is None
  code, out, err = cli(*OWN_FILE, f'--config.data.path={path}',
                       f'--workdir={workdir}')
  assert code == 0, err
  assert 'mine.jsonl train: 48 cascades' in out
  with open(os.path.join(workdir, 'eval_test.json')) as f:
    assert json.load(f)['num_events'] > 0
  assert files(workdir) == ['checkpoints', 'config.json', 'eval_test.json',
                            'metrics.jsonl']  # run.lock released


def test_two_cascades_are_too_few_for_the_splits(tmp_path):
  path, workdir = str(tmp_path / 'two.jsonl'), str(tmp_path / 'run')
  write_cascades(path, 2)
  code, out, err = cli(*OWN_FILE, f'--config.data.path={path}',
                       f'--workdir={workdir}')
  assert code == 2
  assert 'on 2 cascades gives train 2 cascades / ' in err
  assert 'valid 0 cascades / 0 events, test 0 cascades / 0 events: the valid ' \
         'split feeds early stopping' in err
  assert 'two.jsonl valid: 0 cascades, 0 events' in out  # counts printed
  assert files(workdir) is None


def test_rcbm_reads_a_plain_npy_and_names_a_bad_file(tmp_path):
  x = np.random.default_rng(0).random((30, 3, 16))
  np.save(str(tmp_path / 'dyn.npy'), x)
  args = ['--config=configs/rcbm.py', '--config.model.num_levels=1',
          '--config.model.num_filters=2', '--config.model.filter_length=3',
          '--config.model.max_iters=2', '--config.model.num_restarts=1',
          '--config.model.batch_size=0', '--config.plots=False']
  code, out, err = cli(*args, f'--config.data.path={tmp_path}/dyn.npy',
                       f'--workdir={tmp_path}/run')
  assert code == 0, err
  assert '30 samples of 3 features x 16 steps' in out
  assert files(str(tmp_path / 'run')) == [
      'checkpoints', 'config.json', 'eval.json', 'filters_level1.npy',
      'levels', 'metrics.jsonl', 'model.npz']
  (tmp_path / 'dyn.csv').write_text('1,2,3\n')
  code, _, err = cli(*args, f'--config.data.path={tmp_path}/dyn.csv',
                     f'--workdir={tmp_path}/bad')
  assert code == 2 and 'dyn.csv: not an .npz archive nor an .npy file' in err
  assert files(str(tmp_path / 'bad')) is None


@pytest.fixture(scope='module')
def cyan_run(tmp_path_factory):
  """An uninterrupted CYAN run: (workdir, eval_test.json, final params)."""
  workdir = str(tmp_path_factory.mktemp('cyan') / 'run')
  code, _, err = cli(*CYAN, f'--workdir={workdir}')
  assert code == 0, err
  return workdir, _eval(workdir, 'eval_test.json'), _params(workdir)


def _eval(workdir, name):
  """A result file without its wall-clock fields."""
  with open(os.path.join(workdir, name)) as f:
    result = json.load(f)
  drop = ('seconds', 'train_seconds')
  for level in result.get('levels', []):
    for key in drop:
      level.pop(key, None)
  return {k: v for k, v in result.items() if k not in drop}


def _params(workdir):
  """The newest checkpoint's arrays, flattened (name -> array)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  steps = [int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))
           if s.isdigit()]
  path = os.path.join(workdir, 'checkpoints', str(max(steps)), 'state')
  with __import__('warnings').catch_warnings():
    __import__('warnings').filterwarnings('ignore', 'Sharding info')
    tree = ocp.PyTreeCheckpointer().restore(path)
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _same_params(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _damage(checkpoint_dir):
  """Overwrites the first bytes of every file of one checkpoint."""
  for root, _, names in os.walk(checkpoint_dir):
    for name in names:
      with open(os.path.join(root, name), 'r+b') as f:
        f.write(b'\xff garbage \x00' * 4)


# orbax leaves the reads of a damaged checkpoint's arrays un-awaited.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_a_damaged_newest_checkpoint_is_named_and_the_run_resumes(
    cyan_run, tmp_path):
  ref_dir, ref_eval, ref_params = cyan_run
  workdir = str(tmp_path / 'run')
  shutil.copytree(ref_dir, workdir)
  os.remove(os.path.join(workdir, 'eval_test.json'))
  ckpts = os.path.join(workdir, 'checkpoints')
  newest = max(int(s) for s in os.listdir(ckpts))
  _damage(os.path.join(ckpts, str(newest)))
  code, out, err = cli(*CYAN, f'--workdir={workdir}')
  assert code == 0, err
  assert f'{ckpts}/{newest} is damaged and cannot be restored (' in err
  assert f'moved the damaged checkpoint to {workdir}/checkpoints_damaged/' \
         f'{newest}' in err
  assert 'using step 6, the newest intact checkpoint' in err
  assert '[cyan] resuming from step 6' in out
  assert _eval(workdir, 'eval_test.json') == ref_eval
  _same_params(_params(workdir), ref_params)
  assert files(workdir) == sorted(files(ref_dir) + ['checkpoints_damaged'])
  # Every checkpoint damaged: one line naming the folder, exit 2.
  for step in os.listdir(ckpts):
    _damage(os.path.join(ckpts, step))
  code, _, err = cli(*CYAN, f'--workdir={workdir}')
  assert code == 2
  assert err.strip().splitlines()[-1].startswith(
      f'error: {ckpts}: no checkpoint restores: steps ')
  gc.collect()  # orbax's abandoned reads are collected (and ignored) here


def _spawn_sleeper():
  return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])


def test_a_second_run_on_a_locked_workdir_refuses_and_a_stale_lock_is_taken(
    tmp_path):
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  holder = _spawn_sleeper()  # a live "run" on this host
  try:
    lock = {'pid': holder.pid, 'host': socket.gethostname(),
            'started': '2026-01-01T00:00:00+00:00',
            'pid_start': workdir_lock._pid_start(holder.pid)}
    with open(os.path.join(workdir, 'run.lock'), 'w') as f:
      json.dump(lock, f)
    code, out, err = cli(*RCBM, f'--workdir={workdir}')
    assert code == 2 and out == ''
    assert err == (f'error: {workdir} is in use by another run (pid '
                   f'{holder.pid} on host {socket.gethostname()!r}, started '
                   '2026-01-01T00:00:00+00:00); wait for it to end or use '
                   'another --workdir (if no such run exists, delete '
                   f'{workdir}/run.lock).\n')
    assert files(workdir) == ['run.lock']
  finally:
    holder.kill()
    holder.wait()
  # The holder is gone: the next run takes the lock over (here a run that
  # stops at once on a missing file, and releases the lock).
  code, _, err = cli('--config=configs/rcbm.py',
                     f'--config.data.path={tmp_path}/none.npz',
                     f'--workdir={workdir}')
  assert code == 2 and 'none.npz: no such file' in err
  assert f'taking over a stale lock (pid {holder.pid} on host' in err
  assert files(workdir) == []


def test_a_non_finite_loss_before_any_checkpoint_says_there_is_none(tmp_path):
  workdir = str(tmp_path / 'run')
  with pytest.raises(FloatingPointError,
                     match='no checkpoint was written yet .*a rerun starts '
                     'over'):
    cli(*CYAN, '--config.train.learning_rate=1e30',
        '--config.train.checkpoint_every=0', f'--workdir={workdir}')
  assert files(workdir) is None  # the corrected rerun is not refused


def test_converted_files_get_the_users_umask(tmp_path):
  path = str(tmp_path / 'c.jsonl')
  write_cascades(path, 3, with_ids=True)
  out = str(tmp_path / 'out.txt')
  subprocess.run(['sh', '-c', f'umask 027 && "{sys.executable}" -m '
                  f'cyan_rcbm.data --path={path} --format=jsonl '
                  f'--convert_to={out} --convert_format=cyanrnn'],
                 cwd=_ROOT, check=True, capture_output=True)
  assert os.stat(out).st_mode & 0o777 == 0o640


# --- kill -9 and rerun -------------------------------------------------------

_KILLER = '''
import os, signal, sys
from cyan_rcbm import main
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import train
stop = int(os.environ['KILL_AT'])
def kill(step):
  if step == stop:
    os.kill(os.getpid(), signal.SIGKILL)
if os.environ['KILL_TASK'] == 'cyan':
  train._after_step = kill  # after a train step
else:
  write = workdir_lib.MetricWriter.write
  def write_then_kill(self, step, **metrics):  # an RCBM outer iteration
    write(self, step, **metrics)
    kill(step)
  workdir_lib.MetricWriter.write = write_then_kill
sys.argv = ['cyan_rcbm.main'] + sys.argv[1:]
main._cli()
'''


@pytest.fixture(scope='module')
def compile_cache(tmp_path_factory):
  """A persistent XLA cache shared by the killed runs (they compile the same
  steps: the second and third load them)."""
  path = str(tmp_path_factory.mktemp('xla_cache'))
  return {'JAX_COMPILATION_CACHE_DIR': path,
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
          'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'}


def _killed(task, step, args, cache):
  env = dict(os.environ, KILL_AT=str(step), KILL_TASK=task, **cache)
  result = subprocess.run([sys.executable, '-c', _KILLER, *args], cwd=_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def test_cyan_killed_at_three_steps_then_rerun_equals_uninterrupted(
    cyan_run, compile_cache, tmp_path):
  """Kills after steps 1 (no checkpoint yet), 5 (checkpoint 4) and 7 (epoch
  2, checkpoint 6); each rerun resumes from its checkpoint."""
  ref_dir, ref_eval, ref_params = cyan_run
  workdir = str(tmp_path / 'run')
  for step in (1, 5, 7):
    _killed('cyan', step, CYAN + [f'--workdir={workdir}'], compile_cache)
    assert 'run.lock' in files(workdir)  # a kill leaves a stale lock
  code, out, err = cli(*CYAN, f'--workdir={workdir}')
  assert code == 0, err
  assert 'taking over a stale lock' in err and 'resuming from step 6' in out
  assert _eval(workdir, 'eval_test.json') == ref_eval
  _same_params(_params(workdir), ref_params)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f, open(
      os.path.join(ref_dir, 'metrics.jsonl')) as g:
    strip = lambda rows: [{k: v for k, v in json.loads(r).items()
                           if k != 'epoch_seconds'} for r in rows]
    assert strip(f) == strip(g)


# orbax's asyncio loop may report closing late (not the run's concern).
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_rcbm_killed_mid_level_then_rerun_equals_uninterrupted(
    compile_cache, tmp_path):
  """Kills at outer iterations 6 (level 1, checkpoint 4), 10 (checkpoint 8)
  and 14 (level 2 before its first checkpoint: level 1 is read back from
  levels/level1.npz)."""
  ref_dir, workdir = str(tmp_path / 'ref'), str(tmp_path / 'run')
  code, _, err = cli(*RCBM, f'--workdir={ref_dir}')
  assert code == 0, err
  with open(os.path.join(ref_dir, 'metrics.jsonl')) as f:
    level_one = max(json.loads(r)['step'] for r in f
                    if json.loads(r)['level'] == 1)
  for step in (6, 10, level_one + 2):
    _killed('rcbm', step, RCBM + [f'--workdir={workdir}'], compile_cache)
  code, out, err = cli(*RCBM, f'--workdir={workdir}')
  assert code == 0, err
  assert 'taking over a stale lock' in err
  assert _eval(workdir, 'eval.json') == _eval(ref_dir, 'eval.json')
  ref, got = rcbm_io.load_model(ref_dir), rcbm_io.load_model(workdir)
  for a, b in zip(ref.levels, got.levels):
    np.testing.assert_array_equal(b.w, a.w)
    np.testing.assert_array_equal(b.strength, a.strength)
  gc.collect()
