"""Reproduces the experiments of the CYAN-RNN paper (section 4, Figs. 4-6).

Every model (MC-1, CT-Bernoulli, CT-Jaccard, Poisson, Hawkes, RMTPP,
CYAN-RNN, CYAN-RNN(cov)) on every data set (the four generated synthetic
sets, the authors' two shipped sets, and twitter, android, christianity,
topolstm_twitter), the neural models over several seeds. One workdir per run
under `--out_dir/runs/<data set>/<model>[-seed<k>]`; a re-run skips finished
runs and resumes interrupted neural ones from their checkpoints.

    # the full reproduction (hours), then publish tables and figures:
    python scripts/reproduce_cyan.py --out_dir=runs/reproduce \
        --results_dir=docs/cyan_results --notes=docs/cyan_results/notes.md
    # a subset of data sets, data and epochs (minutes):
    python scripts/reproduce_cyan.py --out_dir=runs/quick --quick
    # the test-suite version (2 data sets, tiny models, a few steps):
    python scripts/reproduce_cyan.py --out_dir=/tmp/tiny --tiny

Writes to `--results_dir` (default: `--out_dir`): `results.json` (one row per
run: data set, model, seed and every metric of `cyan_rcbm.cyan.metrics`, null
where a model cannot produce it), `results.md` (mean +- std over seeds, the
paper's claims against our numbers, network inference, the comparison with
the diffusion-prediction literature) and small PNGs: `fig4_*.png` (bar charts
in the style of Fig. 4), `fig5_<set>.png` (alignments without / with
coverage), `fig6_<set>_<model>.png` (inferred networks).

Protocol: the neural models are selected on the validation split only (early
stopping on validation NLL); the baselines are fitted on train (MC-1's
smoothing chosen on validation); every model is scored on the test split by
the same function (`cyan_rcbm.cyan.evaluate.evaluate`). Real-data times are
in hours (`data.time_scale=3600`). twitter, android and christianity use the
chronological 80/10/10 split of MS-HGAT / FOREST (cascades ordered by their
first timestamp); topolstm_twitter its own train/test files.

Layout (`cyan_rcbm/experiments/cyan/`): `plan` (data sets, models, modes,
the config of each run), `runs` (running and collecting the runs), `tables`
and `networks` (the tables of results.md), `figures` (the PNGs), `report`
(results.md). This module is the entry: `make_plan` and `reproduce`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.experiments.cyan import figures
from cyan_rcbm.experiments.cyan import report
from cyan_rcbm.experiments.cyan import runs
# The entry's public names (scripts/reproduce_cyan.py, tests).
from cyan_rcbm.experiments.cyan.plan import (  # pylint: disable=unused-import
    DATASETS, LABELS, MODELS, NEURAL, ROW_KEYS, Plan, make_plan)


def reproduce(plan: Plan, command: str = 'scripts/reproduce_cyan.py'
              ) -> tuple[list[dict[str, Any]], list[str]]:
  """Runs the plan, then writes results.json, results.md and figures.

  Returns:
    the rows and the failures.
  """
  t0 = time.perf_counter()
  os.makedirs(plan.out_dir, exist_ok=True)
  os.makedirs(plan.results_dir, exist_ok=True)
  failures = runs.run_all(plan)
  rows = runs.collect_rows(plan)
  workdir_lib.dump_json(rows, os.path.join(plan.results_dir, 'results.json'))
  made = figures.write_figures(plan, rows)
  path = report.write_report(plan, rows, made, time.perf_counter() - t0,
                             failures, command)
  print(f'[reproduce] {len(rows)} rows; wrote {path} and {len(made)} '
        f'figures in {(time.perf_counter() - t0) / 60:.1f} min', flush=True)
  return rows, failures
