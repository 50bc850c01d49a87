"""The one training entry point: flags -> the right `train_and_evaluate`.

python -m cyan_rcbm.main --config=configs/cyan.py:tiny --workdir=runs/tiny
python -m cyan_rcbm.main --config=configs/rcbm.py:tiny --workdir=runs/rcbm \
    --config.model.num_levels=1

`config.task` picks the job: 'cyan' (CYAN-RNN / RMTPP), 'rcbm' or 'demo'.
"""

from __future__ import annotations

import importlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cyan_rcbm import errors
from cyan_rcbm.common import compile_cache
from cyan_rcbm.common import config_loading

_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for config.json, metrics, checkpoints and '
    'results. Re-running the same command resumes from its last checkpoint.')
config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally `path:variant`, e.g. '
    'configs/cyan.py:tiny. Override fields with --config.a.b=value.')

# task name -> module with `train_and_evaluate(config, workdir)`.
TASKS = {
    'cyan': 'cyan_rcbm.cyan.train',
    'rcbm': 'cyan_rcbm.rcbm.train',
    'demo': 'cyan_rcbm.demo',
}


def run(config, workdir: str):
  """Runs `config.task` in `workdir`; returns what the task returns."""
  task = config.get('task', None)
  if task not in TASKS:
    raise errors.ConfigError(
        f'config.task is {task!r}; expected one of {sorted(TASKS)}.')
  module = importlib.import_module(TASKS[task])
  with compile_cache.active(config, workdir):  # persistent cache, compile time
    return module.train_and_evaluate(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Too many command-line arguments: {argv[1:]}')
  if flags.FLAGS.config is None:
    raise app.UsageError('--config is required, e.g. --config=configs/cyan.py:tiny')
  if not _WORKDIR.value:
    raise app.UsageError('--workdir is required.')
  if not flags.FLAGS['verbosity'].present:
    # orbax logs ~20 INFO lines per checkpoint; progress lines are printed.
    logging.set_verbosity(logging.WARNING)
  try:
    run(flags.FLAGS.config, _WORKDIR.value)
  except errors.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
  """Parses flags; a bad --config or override is one line, not a traceback."""
  try:
    remaining = flags.FLAGS(argv)
    if flags.FLAGS.config is not None:
      flags.FLAGS.config.keys()  # config files load lazily: fail here, once.
    return remaining
  except Exception as e:  # pylint: disable=broad-except
    print(f'error: {config_loading.explain_flag_error(argv, e)}',
          file=sys.stderr)
    sys.exit(2)


def _cli():
  app.run(main, flags_parser=_parse_flags)


if __name__ == '__main__':
  _cli()
