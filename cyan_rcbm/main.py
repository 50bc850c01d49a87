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
from cyan_rcbm.common import config_check
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.common import workdir_lock

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


def run(config, workdir: str, reference=None):
  """Runs `config.task` in `workdir`; returns what the task returns.

  The config is checked first (`config_check.validate`, with `reference`:
  the config as loaded before command-line overrides), so that a bad one
  writes nothing; then the workdir is locked (`workdir_lock`) for the run.
  A fresh run that stops on an `InputError` (or a non-finite loss) before
  its first checkpoint leaves no files behind (`workdir.FreshStart`).
  """
  task = config.get('task', None)
  if task not in TASKS:
    raise errors.ConfigError(
        f'config.task is {task!r}; expected one of {sorted(TASKS)}.')
  if not workdir:
    raise errors.ConfigError('--workdir is required.')
  config_check.validate(config, reference)
  module = importlib.import_module(TASKS[task])
  start = workdir_lib.FreshStart(workdir)
  try:
    with workdir_lock.hold(workdir,
                           enabled=not config.get('distributed', False)):
      try:
        with compile_cache.active(config, workdir):  # persistent cache
          return module.train_and_evaluate(config, workdir)
      except (errors.InputError, FloatingPointError):
        start.discard()  # a fresh run without a checkpoint: no files left
        raise
  finally:
    start.remove_if_empty()


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
    reference = config_loading.load_config(
        flags.FLAGS['config'].config_filename)
    run(flags.FLAGS.config, _WORKDIR.value, reference)
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
