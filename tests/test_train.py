"""Tests for cyan_rcbm.cyan.train: end to end, resumption, NaN handling."""

import contextlib
import io
import json
import math
import os
import re

import jax
import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import checkpoint
from cyan_rcbm.common import config_loading
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import parallel
from cyan_rcbm.cyan import train


class _Interrupt(Exception):
  pass


def _config(**overrides):
  overrides.setdefault('train__checkpoint_every', 8)
  return config_loading.load_config('configs/cyan.py:tiny', **overrides)


def _rows(workdir):
  """metrics.jsonl without wall-clock fields."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k != 'epoch_seconds'} for r in rows]


def _final_params(workdir):
  ckpt = checkpoint.Checkpointer(workdir)
  step = ckpt.latest_step()
  path = os.path.join(ckpt.directory, str(step))
  # restore without a template: compare the raw arrays.
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  restored = ocp.PyTreeCheckpointer().restore(os.path.join(path, 'state'))
  return step, restored


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = train.train_and_evaluate(_config(), workdir)
  _LOGS['uninterrupted'] = out.getvalue()
  return workdir, result


_LOGS = {}  # stdout of the module fixtures' runs


def test_progress_lines_cover_compilation_and_evaluation(uninterrupted):
  log = _LOGS['uninterrupted']
  assert '\r' not in log
  lines = log.splitlines()
  compiling = [i for i, l in enumerate(lines)
               if l.startswith('[cyan] compiling the train step for 1 batch '
                               'shape (rows x length: 16x32) ...')]
  compiled = [i for i, l in enumerate(lines)
              if re.fullmatch(r'\[cyan\] compiled in \d+\.\ds', l)]
  first_step = next(i for i, l in enumerate(lines)
                    if l.startswith('[cyan] step '))
  assert len(compiling) == len(compiled) == 1
  assert compiling[0] < compiled[0] < first_step
  for epoch in (1, 2):
    start = lines.index(f'[cyan] epoch {epoch} valid: evaluating 1 batches '
                        '...')
    assert re.fullmatch(rf'\[cyan\] epoch {epoch}: valid nll .* \(valid '
                        r'\d+\.\ds, epoch \d+\.\ds\)', lines[start + 1])
  start = lines.index('[cyan] test (best params): evaluating 1 batches ...')
  assert re.fullmatch(r'\[cyan\] test: .* \(\d+\.\ds\)', lines[start + 1])
  assert re.search(r'^\[cyan\] analyses done in \d+\.\ds$', log, re.M)


def test_tiny_config_trains_end_to_end(uninterrupted):
  workdir, result = uninterrupted
  for name in ('config.json', 'metrics.jsonl', 'eval_test.json',
               'alignments.npz', 'alignments.png', 'network_inference.json',
               'network_inference.png'):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, 'eval_test.json')) as f:
    assert json.load(f) == json.loads(json.dumps(result))
  for key in metrics.METRIC_KEYS:
    assert key in result and result[key] is not None, key
    assert math.isfinite(result[key]), key
  assert result['num_events'] > 300
  rows = _rows(workdir)
  train_rows = [r['train_nll'] for r in rows if 'train_nll' in r]
  valid_rows = [r['valid_nll_per_event'] for r in rows
                if 'valid_nll_per_event' in r]
  assert np.mean(train_rows[-3:]) < train_rows[0] - 0.5  # the loss falls
  assert min(valid_rows[1:]) < valid_rows[0]
  # user-ranking beats a uniform guess over the ~25 remaining candidates.
  assert result['acc@5'] > 0.3 and result['mrr'] > 0.2
  assert 'user_nll_per_event' in result and 'time_nll_per_event' in result
  with np.load(os.path.join(workdir, 'alignments.npz')) as z:
    alpha = z['alpha_0']
    assert alpha.shape[0] == alpha.shape[1] == len(z['users_0'])
    np.testing.assert_allclose(alpha.sum(1), 1.0, atol=1e-5)
    assert np.all(np.triu(alpha, 1) == 0)  # only past events are attended
  with open(os.path.join(workdir, 'network_inference.json')) as f:
    net = json.load(f)
  for key in ('precision', 'recall', 'f1', 'pr_auc', 'parent_accuracy'):
    assert 0.0 <= net[key] <= 1.0


def test_resume_after_interruptions_equals_uninterrupted(
    uninterrupted, tmp_path, monkeypatch):
  ref_dir, ref_result = uninterrupted
  workdir = str(tmp_path / 'run')
  for stop in (3, 17):  # before any checkpoint; mid epoch 2 (last ckpt: 16)
    def after_step(step, stop=stop):
      if step == stop:
        raise _Interrupt(step)
    monkeypatch.setattr(train, '_after_step', after_step)
    with pytest.raises(_Interrupt):
      train.train_and_evaluate(_config(), workdir)
  monkeypatch.setattr(train, '_after_step', lambda step: None)
  result = train.train_and_evaluate(_config(), workdir)
  assert result == ref_result
  assert _rows(workdir) == _rows(ref_dir)
  step, params = _final_params(workdir)
  ref_step, ref_params = _final_params(ref_dir)
  assert step == ref_step
  jax.tree.map(np.testing.assert_array_equal, params, ref_params)
  # re-running a finished run re-evaluates and gives the same answer.
  assert train.train_and_evaluate(_config(), workdir) == ref_result


def test_non_finite_loss_stops_with_the_step_and_keeps_good_checkpoints(
    tmp_path, monkeypatch):
  config = _config(train__checkpoint_every=2)
  bad_step = 6  # a NaN gap enters the 6th batch of epoch 1
  calls = []
  orig = evaluate.model_inputs

  def poisoned(batch):
    users, gaps, mask, calendar = orig(batch)
    calls.append(1)
    if len(calls) == bad_step:
      gaps = np.where(mask, np.nan, gaps).astype(np.float32)
    return users, gaps, mask, calendar

  monkeypatch.setattr(evaluate, 'model_inputs', poisoned)
  compile_step = parallel.compile_train_step

  def compile_then_count_from_zero(*args):
    compile_step(*args)  # builds one batch per shape: not a train step.
    calls.clear()

  monkeypatch.setattr(parallel, 'compile_train_step',
                      compile_then_count_from_zero)
  workdir = str(tmp_path / 'nan')
  with pytest.raises(FloatingPointError,
                     match=f'step {bad_step} \\(epoch 1\\)'):
    train.train_and_evaluate(config, workdir)
  assert checkpoint.Checkpointer(workdir).latest_step() == bad_step - 2
  _, params = _final_params(workdir)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def test_repeated_users_with_active_masking_is_a_config_error(tmp_path):
  path = tmp_path / 'own.txt'
  lines = [f'{i},{i % 5},0.0,{(i + 1) % 5},0.5,{i % 5},0.9' for i in range(20)]
  path.write_text('\n'.join(lines) + '\n')
  config = _config(data__name='', data__path=str(path), data__format='cyanrnn',
                   data__duplicate_users='keep',
                   data__num_cascades=0)
  with pytest.raises(errors.ConfigError, match='more than once'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_a_different_config_in_the_same_workdir_is_refused(uninterrupted):
  workdir, _ = uninterrupted
  with pytest.raises(errors.ConfigError, match='different config'):
    train.train_and_evaluate(_config(seed=1), workdir)
