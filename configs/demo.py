"""The README's main job on built-in data (no downloads).

python -m cyan_rcbm.main --config=configs/demo.py --workdir=runs/demo
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f'configs/demo.py has no variants; got {arg!r}.')
  config = ml_collections.ConfigDict()
  config.task = 'demo'
  config.seed = 0
  config.synthetic = ml_collections.ConfigDict()
  config.synthetic.num_cascades = 20000  # the paper's set size (SPEC A2)
  return config
