"""The public CYAN-RNN / RMTPP API: train, load, evaluate, predict, sample.

    import cyan_rcbm as cr
    model = cr.train_cyan(cr.load_config('configs/cyan.py:tiny'), 'runs/tiny')
    model = cr.load_cyan('runs/tiny')           # later, from the workdir
    model.evaluate('test')                      # the metrics of eval_test.json
    model.predict([[(0.0, '3'), (0.4, '17')]], k=5)
    model.forecast_size(prefix, horizon=20.0)   # Monte Carlo size interval

This module builds `CyanModel`s (`cyan_rcbm.cyan.cyan_model`: its methods,
and the cascades they accept) from a config or a run directory; the input
checks are in `cyan_rcbm.cyan.api_inputs`.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Sequence

import ml_collections
import numpy as np
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import checkpoint as checkpoint_lib
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import api_inputs
from cyan_rcbm.cyan import cyan_model
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import train as train_lib
from cyan_rcbm.data import registry
from cyan_rcbm.data import splits as splits_lib

# Public names of the API that live in their own modules.
CyanModel = cyan_model.CyanModel
Prediction = cyan_model.Prediction
SPLITS = api_inputs.SPLITS

MODEL_INFO_FILE = 'cyan_model.json'  # vocab and input kind, next to config.json


def _as_config(config: Any) -> ml_collections.ConfigDict:
  if isinstance(config, str):
    config = config_loading.load_config(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.InputError(
        'config must be an ml_collections.ConfigDict (e.g. '
        "cr.load_config('configs/cyan.py:tiny')) or a 'path[:variant]' "
        f'string; got {type(config).__name__}.')
  if config.get('task') != 'cyan':
    raise errors.ConfigError(
        f"config.task is {config.get('task')!r}; train_cyan needs a CYAN "
        'config (configs/cyan.py).')
  return config


def create_cyan(config: ml_collections.ConfigDict | str,
                vocab: Sequence[str] | int, *, calendar: bool = False,
                seed: int | None = None) -> CyanModel:
  """An untrained model with the initial parameters of a run (equations.md A4).

  Args:
    config: a CYAN config or 'configs/cyan.py:variant'.
    vocab: the user tokens, or U (tokens '0'..'U-1').
    calendar: whether the model reads calendar features.
    seed: parameter-init seed (default `config.seed`).
  """
  config = _as_config(config)
  if isinstance(vocab, (int, np.integer)):
    vocab = [str(i) for i in range(int(vocab))]
  # Eager construction: after the first model, building another costs
  # milliseconds, where the jitted `init_params` compiles once per config.
  graphdef, state = nnx.split(model_lib.create_model(
      config.model, len(vocab), calendar=calendar,
      seed=config.seed if seed is None else seed), nnx.Param)
  return CyanModel(config, graphdef, state.to_pure_dict(), vocab,
                   calendar=calendar, time_unit='unspecified')


def _model_info(config: ml_collections.ConfigDict, workdir: str
                ) -> tuple[dict[str, Any], splits_lib.Splits | None]:
  """Vocab, calendar flag and time unit of a run (cached in the workdir)."""
  path = os.path.join(workdir, MODEL_INFO_FILE)
  data_json = json.loads(json.dumps(workdir_lib._to_jsonable(config.data)))
  if os.path.exists(path):
    with open(path) as f:
      info = json.load(f)
    if info.get('data') == data_json:
      return info, None
  splits = registry.load_splits(config.data)
  calendar = config.model.calendar_embed > 0 and all(
      c.timestamps is not None for _, d in splits.items() for c in d.cascades)
  info = dict(vocab=list(splits.train.vocab), calendar=bool(calendar),
              time_unit=splits.test.time_unit, data=data_json)
  try:
    workdir_lib.dump_json(info, path)
  except OSError:  # a read-only run directory: recompute next time
    pass
  return info, splits


def load_cyan(workdir: str, *, step: int | None = None) -> CyanModel:
  """The best-validation model of a (finished or partial) CYAN run (equations.md
  A4).

  Reads `workdir/config.json` and the orbax checkpoint (`best_params`; the
  parameters early stopping on the validation NLL of Eq. 8 selected).

  Args:
    workdir: a run directory of `train_cyan` / `python -m cyan_rcbm.main`.
    step: which checkpoint (default: the latest).
  """
  if not isinstance(workdir, (str, os.PathLike)):
    raise errors.InputError(
        f'workdir must be a path; got {type(workdir).__name__}.')
  workdir = os.fspath(workdir)
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.exists(config_path):
    raise errors.InputError(
        f'{workdir} has no {workdir_lib.CONFIG_FILE}: not a run directory. '
        'Train first (cr.train_cyan(config, workdir) or python -m '
        'cyan_rcbm.main --config=configs/cyan.py:... --workdir=...).')
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get('task') != 'cyan':
    raise errors.InputError(
        f"{config_path}: task is {config.get('task')!r}, not a CYAN run.")
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise errors.InputError(
        f'{workdir} has no checkpoints yet: the run has not finished an '
        'epoch (or a checkpoint_every interval).')
  info, splits = _model_info(config, workdir)
  graphdef, params = model_lib.init_params(
      config.model, len(info['vocab']), calendar=info['calendar'],
      seed=config.seed)
  tx = train_lib.create_optimizer(config.train)
  template = dict(params=params, opt_state=tx.init(params),
                  best_params=params)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  with warnings.catch_warnings():  # orbax: sharding read from the checkpoint
    warnings.filterwarnings('ignore', message='Sharding info not provided')
    restored = ckpt.restore(template, step=step, set_aside=False)
  if restored is None:
    raise errors.InputError(f'{workdir} has no checkpoint to load.')
  step, state, _ = restored
  eval_path = os.path.join(workdir, train_lib.EVAL_FILE)
  test_metrics = None
  if os.path.exists(eval_path):
    with open(eval_path) as f:
      test_metrics = json.load(f)
  return CyanModel(config, graphdef, state['best_params'], info['vocab'],
                   calendar=info['calendar'], time_unit=info['time_unit'],
                   workdir=workdir, step=int(step),
                   test_metrics=test_metrics, splits=splits)


def train_cyan(config: ml_collections.ConfigDict | str,
               workdir: str) -> CyanModel:
  """Trains (or resumes) a CYAN run and returns its best model (equations.md
  A4).

  Minimises the NLL of Eq. 8 with Adam, early stopping on the validation
  NLL (`cyan_rcbm.cyan.train.train_and_evaluate`: writes `config.json`,
  `metrics.jsonl`, checkpoints, `eval_test.json` and the analyses to
  `workdir`), then `load_cyan(workdir)`.

  Args:
    config: a CYAN config (`cr.load_config('configs/cyan.py:tiny')`) or its
      'path[:variant]' string.
    workdir: the run directory; re-running the same config resumes.
  """
  config = _as_config(config)
  if not isinstance(workdir, (str, os.PathLike)) or not os.fspath(workdir):
    raise errors.InputError(f'workdir must be a non-empty path; got '
                            f'{workdir!r}.')
  train_lib.train_and_evaluate(config, os.fspath(workdir))
  return load_cyan(os.fspath(workdir))
