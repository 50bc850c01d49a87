"""End-to-end tests of cyan_rcbm.rcbm.train (configs/rcbm.py), with resume."""

import contextlib
import io
import json
import os
import re
import runpy

import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import train

TINY = 'configs/rcbm.py:tiny'


class _Interrupt(Exception):
  pass


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('full'))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = train.train_and_evaluate(config_loading.load_config(TINY),
                                      workdir)
  _LOGS['full'] = out.getvalue()
  return workdir, result


_LOGS = {}  # stdout of the module fixtures' runs


def _steps(lines, prefix):
  """'i/N' of the progress lines that start with `prefix`."""
  return [re.search(r'\] step (\S+)', l).group(1) for l in lines
          if l.startswith(prefix)]


def test_progress_lines_of_restarts_and_evaluation(full_run):
  """tiny: 2 levels, 2 restarts screened for 3 iterations, then the kept
  one runs on to 12; BIC refits with K = 3 for 5 iterations."""
  log = _LOGS['full']
  assert '\r' not in log
  lines = log.splitlines()
  rows = workdir_lib.MetricWriter(full_run[0]).read()
  for level in (1, 2):
    name = f'[rcbm L{level}'
    for j in (1, 2):
      assert _steps(lines, f'{name} restart {j}/2] step') == [
          '1/3', '2/3', '3/3']
      assert len([l for l in lines if l.startswith(
          f'{name}] restart {j}/2 done: 3 outer iterations')]) == 1
    assert len([l for l in lines
                if l.startswith(f'{name}] kept restart ')]) == 1
    # the kept run: its own iterations 4.. once each (screening ones are
    # not replayed); the first has no rate, the next ones have one.
    live = [l for l in lines if l.startswith(f'{name}] step ')]
    iters = [r['iteration'] for r in rows if r['level'] == level]
    assert _steps(lines, f'{name}] step ') == [
        f'{i}/12' for i in range(4, max(iters) + 1)]
    assert 'iterations/s' not in live[0] and 'ETA' in live[1]
  for what in ('inferring the activations of 96 train samples (2 levels)',
               'log-likelihood of 24 test samples', 'writing figures'):
    start = lines.index(f'[rcbm] eval: {what} ...')
    assert re.fullmatch(r'\[rcbm\] eval: done in \d+\.\ds.*',
                        lines[start + 1]), lines[start + 1]
  for level in (1, 2):
    assert _steps(lines, f'[rcbm BIC L{level} K=3] step') == [
        f'{i}/5' for i in range(1, 6)]
    assert len([l for l in lines if re.fullmatch(
        rf'\[rcbm\] eval: BIC level {level} K=3 \(1/1\): log L \S+, 5 outer '
        r'iterations, converged=False, \d+\.\ds', l)]) == 1
  assert re.search(r'^\[rcbm\] eval: finished in \d+\.\ds$', log, re.M)


def test_tiny_run_writes_everything(full_run):
  workdir, result = full_run
  for name in ('config.json', 'metrics.jsonl', 'model.npz', 'eval.json',
               'filters_level1.npy', 'filters_level2.npy',
               'filters_level1.png', 'filters_level2.png',
               'k_selection_level1.png', 'k_selection_level2.png',
               'fit_histograms.png'):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, 'eval.json')) as f:
    stored = json.load(f)
  for key in ('objective', 'perplexity_train', 'perplexity_test', 'sigma',
              'beta', 'k_selected', 'train_seconds'):
    assert key in stored, key
  assert len(stored['k_selected']) == 2 and len(stored['sigma']) == 2
  assert np.isfinite(stored['perplexity_train'])
  assert np.isfinite(stored['perplexity_test'])
  assert stored['levels'][0]['bic']['num_filters'] == [3]
  rows = workdir_lib.MetricWriter(workdir).read()
  assert [r['step'] for r in rows] == list(range(1, len(rows) + 1))
  assert {'objective', 'sigma', 'beta', 'level'} <= set(rows[0])
  model = io_lib.load_model(workdir)
  w1 = np.load(os.path.join(workdir, 'filters_level1.npy'))
  np.testing.assert_array_equal(model.levels[0].w, w1)
  assert w1.shape == (3, 7, 5)
  assert np.all(np.diff(model.levels[0].strength) <= 0)


def test_interrupted_run_resumes_from_checkpoint(full_run, tmp_path,
                                                 monkeypatch, capsys):
  """Killed at level 1, iteration 9 (checkpoint at 8): the rerun continues
  there and ends with the uninterrupted run's filters and metrics."""
  ref_dir, _ = full_run
  workdir = str(tmp_path / 'run')
  config = config_loading.load_config(TINY)
  original = workdir_lib.MetricWriter.write
  calls = []

  def write_then_die(self, step, **metrics):
    original(self, step, **metrics)
    calls.append(step)
    if step == 9:
      raise _Interrupt()

  monkeypatch.setattr(workdir_lib.MetricWriter, 'write', write_then_die)
  with pytest.raises(_Interrupt):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(workdir_lib.MetricWriter, 'write', original)
  capsys.readouterr()
  train.train_and_evaluate(config, workdir)
  assert 'resuming level 1 at outer iteration 8' in capsys.readouterr().out
  ref = io_lib.load_model(ref_dir)
  got = io_lib.load_model(workdir)
  for a, b in zip(ref.levels, got.levels):
    np.testing.assert_allclose(b.w, a.w, rtol=1e-5, atol=1e-6)
  ref_rows = workdir_lib.MetricWriter(ref_dir).read()
  rows = workdir_lib.MetricWriter(workdir).read()
  assert [r['step'] for r in rows] == [r['step'] for r in ref_rows]
  np.testing.assert_allclose([r['objective'] for r in rows],
                             [r['objective'] for r in ref_rows], rtol=1e-5)
  # A third run reuses the finished model.
  train.train_and_evaluate(config, workdir)
  assert 'holds a finished run' in capsys.readouterr().out


def test_npz_path_and_errors(tmp_path):
  dyn, _, _ = make_planted(40, num_features=3, length=20, seed=1)
  path = str(tmp_path / 'dyn.npz')
  dynamics_lib.write_dynamics(dyn, path)
  config = config_loading.load_config(
      'configs/rcbm.py', data__path=path, model__num_levels=1,
      model__num_filters=3, model__filter_length=4, model__max_iters=3,
      model__num_restarts=1, model__batch_size=0, plots=False)
  result = train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert len(result['sigma']) == 1 and result['num_test'] == 8
  model = io_lib.load_model(str(tmp_path / 'w'))
  assert model.feature_names == tuple(dyn.feature_names)
  np.testing.assert_allclose(model.scale, train.data_scale(
      np.asarray(dyn.x, np.float64)[train.split_indices(40, 0.2, 0)[0]],
      'feature'))

  with pytest.raises(errors.ConfigError, match='no variants|unknown variant'):
    config_loading.load_config('configs/rcbm.py:nope')
  with pytest.raises(errors.ConfigError, match='data.path is empty'):
    train.train_and_evaluate(config_loading.load_config('configs/rcbm.py'),
                             str(tmp_path / 'e1'))
  with pytest.raises(errors.DataError, match='no such file'):
    train.train_and_evaluate(config_loading.load_config(
        'configs/rcbm.py', data__path=str(tmp_path / 'nope.npz')),
                             str(tmp_path / 'e2'))
  with pytest.raises(errors.ConfigError, match='3 entries for 2 levels'):
    train.train_and_evaluate(config_loading.load_config(
        TINY, model__num_filters=(2, 2, 2)), str(tmp_path / 'e3'))
  with pytest.raises(errors.ConfigError, match='model: step'):
    train.train_and_evaluate(config_loading.load_config(
        TINY, model__step='newton'), str(tmp_path / 'e4'))
  with pytest.raises(errors.ConfigError, match='data.scale'):
    train.data_scale(np.ones((2, 2, 2)), 'minmax')
  with pytest.raises(errors.ConfigError, match='test_fraction'):
    train.split_indices(10, 1.0, 0)


def test_split_and_scale():
  tr, te = train.split_indices(10, 0.2, 3)
  assert len(te) == 2 and len(tr) == 8
  assert sorted(np.concatenate([tr, te]).tolist()) == list(range(10))
  tr2, te2 = train.split_indices(10, 0.2, 3)
  np.testing.assert_array_equal(te, te2)
  assert len(train.split_indices(3, 0.01, 0)[1]) == 1
  x = np.zeros((2, 2, 3))
  x[:, 1] = [[1, 2, 3], [4, 5, 6]]
  np.testing.assert_allclose(train.data_scale(x, 'feature'),
                             [1.0, np.std([1, 2, 3, 4, 5, 6])])
  np.testing.assert_allclose(train.data_scale(x, 'none'), [1, 1])


def test_config_variants_exist():
  variants = runpy.run_path(os.path.join(
      os.path.dirname(__file__), '..', 'configs', 'rcbm.py'))['VARIANTS']
  assert 'cascades_topolstm_twitter' in variants
  for variant in variants:
    config = config_loading.load_config(f'configs/rcbm.py:{variant}')
    assert config.task == 'rcbm'
    specs = train.level_specs(config)
    assert len(specs) == config.model.num_levels
  assert config_loading.load_config(
      'configs/rcbm.py:cascades_christianity').data.cascades.name == (
          'christianity')
  assert isinstance(train.level_specs(config_loading.load_config(TINY))[0],
                    rcbm_lib.LevelSpec)
