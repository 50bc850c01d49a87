"""Reproduces the RCBM paper's "Experimental Results" on the data we have.

The paper's Twitter-keyword and Yelp sets are not available; we use the
Higgs-Twitter dynamics (`cyan_rcbm.data.higgs`, the paper's seven Twitter
features per target user, 10-minute bins) and planted synthetic data from
the model itself (`cyan_rcbm.data.planted`, equations.md B3), with known
filters.

Experiments (one key each in results.json):
* `runtime` (Figs. 5-8): runtime and held-out likelihood against the number
  of training samples (100 ... 10,000) for RCBM-FS, RCBM-LS (warm-started
  line search), RCBM-LS as the paper ran it (backtracking afresh at every
  update), SC, SSM and cAE, repeated; every model scored in the same two
  families (per entry of X and per sample, `likelihood.residual_nll`);
  `fsls`: the objective of the three RCBM step rules against wall time at
  one n (the "4-6x faster at equal quality" claim, measured directly).
* `kselect` (Figs. 9-10): F(m) (Eq. 11) of one RCBM with K = 10 per level
  against BIC over K (one CBM per K and level).
* `composition` (Figs. 11-14): a 2-level RCBM on the Higgs dynamics with K
  from the knee, its filters ranked by activation, drawn as PNGs.
* `anomalies` (Tables 2-3): the lowest-probability Higgs samples with their
  dynamics, compared with a frequency ranking; ROC-AUC on planted anomalies.
* `forecast` (Tables 5-6): VAR (linear) and SVR on raw / H1 / H2 / H1+H2 /
  H1^2 features, strict time split.

    # full mode (hours on 2 shared cores), published under docs/:
    python scripts/reproduce_rcbm.py --out_dir=runs/reproduce_rcbm \
        --results_dir=docs/rcbm_results --notes=docs/rcbm_results/notes.md
    # the runtime study and FS/LS traces only, the other experiments'
    # results carried from an earlier run with the same settings for them:
    python scripts/reproduce_rcbm.py --out_dir=runs/reproduce_rcbm \
        --only=runtime,fsls --carry_from=docs/rcbm_results/results.json \
        --results_dir=docs/rcbm_results --notes=docs/rcbm_results/notes.md
    # quick mode (under 10 minutes) and the test-suite mode (seconds):
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_quick --quick
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_tiny --tiny

A re-run with the same --out_dir skips every finished cell / experiment
(cached under --out_dir) and continues the rest.

Layout (`cyan_rcbm/experiments/rcbm/`): `plan` (modes, settings, `Plan`),
`samples` (Higgs and planted sets), `models` (fitting an RCBM from the
settings), `cache` (results and models under --out_dir, keyed by the
settings), one module per experiment (`runtime` with `cells` and the FS/LS
study, `kselect`, `composition`, `anomalies`, `forecast`), and `report`
(results.json, results.md, with `claims`, `tables` and `figures`). This
module is the entry: `make_plan` and `reproduce`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from cyan_rcbm.experiments.rcbm import anomalies
from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import composition
from cyan_rcbm.experiments.rcbm import forecast
from cyan_rcbm.experiments.rcbm import kselect
from cyan_rcbm.experiments.rcbm import report
from cyan_rcbm.experiments.rcbm import runtime
# The entry's public names (scripts/reproduce_rcbm.py, tests).
from cyan_rcbm.experiments.rcbm.plan import (  # pylint: disable=unused-import
    EXPERIMENTS, LABELS, MODELS, ROW_KEYS, Plan, Settings, log, make_plan)


# Experiments whose results can be carried from an earlier results.json, and
# the settings only the runtime study reads (they may differ there).
CARRIED = ('kselect', 'composition', 'anomalies', 'forecast')
RUNTIME_ONLY = ('n_grid', 'reps', 'reps_large', 'large_n', 'runtime_max_iters',
                'fsls_max_iters', 'cae_max_n')


def carried_results(plan: Plan) -> dict[str, Any]:
  """The `CARRIED` experiments not run here, from `plan.carry_from`.

  Raises:
    ValueError: that run used other settings for them (names the fields).
  """
  if not plan.carry_from:
    return {}
  with open(plan.carry_from) as f:
    old = json.load(f)
  now = json.loads(json.dumps(dataclasses.asdict(plan.settings), default=str))
  differ = sorted(k for k in now if k not in RUNTIME_ONLY
                  and now[k] != old.get('settings', {}).get(k))
  if differ or old.get('mode') != plan.mode:
    raise ValueError(f'{plan.carry_from}: made with other settings '
                     f'(mode {old.get("mode")!r}, fields {differ}); its '
                     'results cannot be carried')
  names = [k for k in CARRIED if k not in plan.experiments and k in old]
  out = {k: old[k] for k in names}
  if names:
    out['carried'] = {'from': plan.carry_from, 'experiments': names}
  return out


def reproduce(plan: Plan) -> dict[str, Any]:
  """Runs the planned experiments (skipping cached ones) and writes results."""
  os.makedirs(plan.out_dir, exist_ok=True)
  t0 = time.perf_counter()
  results: dict[str, Any] = carried_results(plan)
  k_selection = (cache.load_cache(plan, 'kselect')
                 or results.get('kselect'))
  for name in plan.experiments:
    t1 = time.perf_counter()
    log(f'--- {name}')
    if name == 'runtime':
      results[name] = runtime.run_runtime(plan)
    elif name == 'fsls':
      results[name] = runtime.run_fsls(plan)
    elif name == 'kselect':
      results[name] = k_selection = kselect.run_kselect(plan)
    elif name == 'composition':
      results[name] = composition.run_composition(plan, k_selection)
    elif name == 'anomalies':
      results[name] = anomalies.run_anomalies(plan, k_selection)
    elif name == 'forecast':
      results[name] = forecast.run_forecast(plan, k_selection)
    log(f'{name} done in {time.perf_counter() - t1:.0f}s')
  results['wall_seconds'] = time.perf_counter() - t0
  path = report.write_results(plan, results)
  log(f'wrote {path} ({results["wall_seconds"]:.0f}s)')
  return results
