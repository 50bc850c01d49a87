"""Tests for cyan_rcbm.cyan.train: end to end, resumption, NaN handling."""

import contextlib
import io
import json
import math
import os
import re
import warnings

import jax
import numpy as np
import pytest
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import checkpoint
from cyan_rcbm.common import config_loading
from cyan_rcbm.cyan import censoring
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import model as model_lib
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
  # restore without a template: compare the raw arrays (orbax warns that it
  # reads the shardings from the checkpoint, which is what this wants).
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', 'Sharding info not provided',
                            UserWarning)
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


# -- train.censor_end: the censored last gap ----------------------------------


def _censor_batch():
  """Three rows of 5, 3 and 2 events (padding after), times in [0, 3]."""
  users = np.array([[0, 3, 1, 4, 2, 0], [5, 2, 0, 0, 0, 0],
                    [1, 4, 0, 0, 0, 0]], np.int32)
  gaps = np.array([[0, .3, .1, .9, .4, 0], [0, 1.5, .2, 0, 0, 0],
                   [0, .05, 0, 0, 0, 0]], np.float32)
  mask = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0],
                   [1, 1, 0, 0, 0, 0]], bool)
  return users, gaps, mask


def test_censored_loss_adds_exactly_the_survival_of_the_last_gap():
  # rmtpp: the term does not depend on the variant, and its init compile is
  # the one of the next test (tiny data: 32 users).
  config = _config(model__variant='rmtpp')
  graphdef, params = model_lib.init_params(
      config.model, 32, calendar=False, time_b_init=0.3, time_w_scale=0.5,
      seed=0)
  users, gaps, mask = _censor_batch()
  inputs = (users, gaps, mask, None)
  forward = jax.jit(lambda p, i: nnx.merge(graphdef, p)(*i))
  loss = jax.jit(train._loss, static_argnums=(1, 3))
  out = jax.device_get(forward(params, inputs))
  b, w = out.b.astype(np.float64), float(out.w)
  # Eq. 8 in closed form: -log p(u_{k+1}) - (b + w d - e^b/w (e^{w d} - 1)).
  eq8, count = 0.0, 0
  for r in range(3):
    n = int(mask[r].sum())
    for k in range(n - 1):
      d = float(gaps[r, k + 1])
      eq8 -= out.log_probs[r, k, users[r, k + 1]]
      eq8 -= b[r, k] + w * d - np.exp(b[r, k]) / w * np.expm1(w * d)
      count += 1
  loss_off, _ = loss(params, graphdef, inputs, 0.0)
  np.testing.assert_allclose(float(loss_off), eq8 / count, rtol=2e-6)
  end = 5.0
  survival = 0.0  # -log S(end - t_N) = e^b/w (e^{w (end - t_N)} - 1)
  for r in range(3):
    n = int(mask[r].sum())
    t_last = float(np.sum(gaps[r, :n], dtype=np.float64))
    survival += np.exp(b[r, n - 1]) / w * np.expm1(w * (end - t_last))
  assert survival > 0.1
  loss_on, (_, _, censored_sum, count_on) = loss(params, graphdef, inputs,
                                                 end)
  assert int(count_on) == count
  np.testing.assert_allclose(float(censored_sum), survival, rtol=2e-5)
  np.testing.assert_allclose(float(loss_on) - float(loss_off),
                             survival / count, rtol=2e-5)
  # rows whose last event is at or past the end add nothing (S(0) = 1): at
  # end = 1, rows 0 and 1 (last events at 1.7) are past it, row 2 is not.
  late = censoring.censored_nll(forward(params, inputs), gaps, mask, 1.0)
  np.testing.assert_allclose(
      np.asarray(late).sum(1),
      [0, 0, np.exp(b[2, 1]) / w * np.expm1(w * (1.0 - 0.05))], rtol=2e-5)


def test_censored_training_uses_the_same_objective_for_validation(tmp_path):
  workdir = str(tmp_path / 'censored')
  config = _config(train__censor_end=100.0, train__num_epochs=1,
                   model__variant='rmtpp')  # no decoder or analyses: fast
  with contextlib.redirect_stdout(io.StringIO()) as out:
    result = train.train_and_evaluate(config, workdir)
  rows = _rows(workdir)
  assert all(r['train_censored_nll'] > 0 for r in rows if 'train_nll' in r)
  (valid,) = [r for r in rows if 'valid_nll_per_event' in r]
  assert valid['valid_censored_nll_per_event'] > 0
  assert valid['valid_objective_per_event'] == pytest.approx(
      valid['valid_nll_per_event'] + valid['valid_censored_nll_per_event'])
  assert result['best_valid_nll'] == pytest.approx(
      valid['valid_objective_per_event'])
  assert result['censored_nll_per_event'] > 0
  assert re.search(r'^\[cyan\] epoch 1: valid objective [\d.]+ \(user [\d.]+, '
                   r'time -?[\d.]+, censored [\d.]+\), acc@1 0\.\d{4}, ',
                   out.getvalue(), re.M)


@pytest.mark.parametrize('overrides, match', [
    (dict(train__censor_end=-1.0), 'censor_end must be a finite time >= 0'),
    (dict(train__censor_end=1.0), r"train cascades have events later .*"
     r"\(cascade '.+': last event at"),
    (dict(train__censor_end=100.0, data__max_events=4),
     'needs whole cascades.*max_events=4 truncated'),
])
def test_bad_censor_end_is_a_config_error(tmp_path, overrides, match):
  with pytest.raises(errors.ConfigError, match=match):
    train.train_and_evaluate(_config(**overrides), str(tmp_path / 'run'))
