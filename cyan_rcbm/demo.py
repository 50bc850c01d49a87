"""The README's main job, on built-in data (nothing to download).

python -m cyan_rcbm.main --config=configs/demo.py --workdir=runs/demo

Generates a synthetic core-periphery / exponential-delay cascade set (SPEC A2)
in the workdir and prints its statistics. Later stages of the demo (training
CYAN-RNN(cov) vs RMTPP, a 2-level RCBM) are added as those models land.
"""

from __future__ import annotations

import json
import os
import time

import ml_collections

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.data import stats
from cyan_rcbm.data import synthetic


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> dict:
  workdir_lib.prepare_workdir(config, workdir)
  t0 = time.perf_counter()
  data = synthetic.make_synthetic(
      network='cp', delay='exp', num_users=32,
      num_cascades=config.synthetic.num_cascades, seed=config.seed)
  out_dir = os.path.join(workdir, 'synthetic_cp_exp')
  synthetic.save_synthetic(data, out_dir)
  summary = stats.dataset_stats(data.dataset)
  print(f'[demo] wrote {out_dir} in {time.perf_counter() - t0:.1f}s')
  print(json.dumps(summary))
  return summary
