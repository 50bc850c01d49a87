"""The README's main job on built-in data (no downloads): the whole story.

python -m cyan_rcbm.main --config=configs/demo.py --workdir=runs/demo
python -m cyan_rcbm.main --config=configs/demo.py:tiny --workdir=runs/demo_tiny

Part 1: CYAN-RNN(cov) vs RMTPP on a synthetic core-periphery /
exponential-delay cascade set (equations.md A2), `config.cyan` (a
configs/cyan.py config) once per entry of `config.cyan_variants`. Part 2: a
2-level RCBM on the Higgs-Twitter dynamics, `config.rcbm` (a configs/rcbm.py
config). This file is the one place for the demo's sizes; every field of the two
embedded configs can be overridden, e.g. `--config.cyan.train.num_epochs=8`,
`--config.rcbm.data.max_samples=0` (all samples), `--config.cyan.log_every=5`
(progress line every 5 train steps), `--config.rcbm.log_every=1` (every outer
iteration), `--config.tensorboard=True`.

Variants: default (about 5 minutes on 2 CPU cores), 'tiny' (tests: seconds).
"""

import importlib.util
import os

import ml_collections

VARIANTS = ('default', 'tiny')


def _sibling(name: str):
  """configs/<name>.py as a module (this file is loaded by path, not import)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  spec = importlib.util.spec_from_file_location(f'_demo_{name[:-3]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The demo config of variant `arg` ('default' or 'tiny')."""
  arg = arg or 'default'
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r} of configs/demo.py; valid: '
                     f'{", ".join(VARIANTS)}.')
  config = ml_collections.ConfigDict()
  config.task = 'demo'
  config.seed = 0               # every part's seed (replaces cyan.seed, rcbm.seed)
  config.compilation_cache = 'auto'  # JAX's persistent cache: 'auto' | 'workdir' |
                                     #   'off' | a folder (common/compile_cache.py)
  config.tensorboard = False    # also write TensorBoard scalars per sub-run
  config.cyan_variants = ('cyan_cov', 'rmtpp')  # model.variant of each run

  # Part 1: a configs/cyan.py config (model.variant is set per run).
  cyan = _sibling('cyan.py').get_config(
      'tiny' if arg == 'tiny' else 'synthetic_cp_exp')
  if arg == 'default':
    cyan.data.num_cascades = 4000       # 3,200 train / 400 valid / 400 test
    cyan.batching.bucket_lengths = (16, 32)  # two shapes: less compiling
    cyan.train.num_epochs = 8
    cyan.train.patience = 2
    cyan.log_every = 10
  config.cyan = cyan

  # Part 2: a configs/rcbm.py config on the Higgs-Twitter dynamics.
  rcbm = _sibling('rcbm.py').get_config('twitter_higgs')
  rcbm.model.num_levels = 2
  if arg == 'default':
    rcbm.data.max_samples = 1500        # of 5,641 targets (0: all)
    rcbm.model.num_restarts = 1
    rcbm.model.max_iters = 30
    rcbm.model.inner_max_iters = 50
    rcbm.model.batch_size = 1500
    rcbm.eval.infer_max_iters = 200
    rcbm.eval.infer_batch_size = 1500
    rcbm.log_every = 5
  else:
    rcbm.data.max_samples = 60
    rcbm.model.num_filters = 3
    rcbm.model.filter_length = (5, 3)
    rcbm.model.num_restarts = 1
    rcbm.model.max_iters = 4
    rcbm.model.inner_max_iters = 20
    rcbm.model.batch_size = 64
    rcbm.eval.infer_max_iters = 30
    rcbm.eval.infer_batch_size = 64
    rcbm.log_every = 2
  config.rcbm = rcbm
  return config
