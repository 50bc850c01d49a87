"""Network inference (Fig. 6): the attention runs' numbers and a baseline.

`network_rows` reads `network_inference.json` of every attention run;
`previous_event_network` scores the model-free guess "parent = previous
event" on the test split; `network_table` puts both in one table.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cyan_rcbm.cyan import analysis
from cyan_rcbm.data import registry
from cyan_rcbm.experiments.cyan import runs
from cyan_rcbm.experiments.cyan import tables
from cyan_rcbm.experiments.cyan.plan import (GENERATED, LABELS, Plan,
                                             run_config, run_dir)


def network_rows(plan: Plan) -> list[dict[str, Any]]:
  """network_inference.json of every attention run, plus the previous-event
  network of the test split (the MC-1-style guess) for comparison."""
  out = []
  for dataset in plan.datasets:
    for variant in ('cyan', 'cyan_cov'):
      if variant not in plan.models:
        continue
      for seed in plan.seeds:
        path = os.path.join(run_dir(plan, dataset, variant, seed),
                            analysis.NETWORK_FILE)
        if os.path.exists(path):
          out.append(dict(runs.read_json(path), dataset=dataset, model=variant,
                          seed=seed))
  return out


def previous_event_network(dataset: str, mode: str) -> dict[str, Any] | None:
  """PR-AUC / best F1 of the network 'parent = previous event' on test."""
  config = run_config(dataset, mode)
  splits = registry.load_splits(config.data)
  test = splits.test
  if test.edges is None or not len(test.edges):
    return None
  u = test.num_users
  counts = np.zeros((u, u), np.int64)
  for c in test.cascades:
    np.add.at(counts, (c.users[:-1], c.users[1:]), 1)
  truth = np.zeros((u, u), bool)
  truth[test.edges[:, 0], test.edges[:, 1]] = True
  seen = np.zeros(u, bool)
  for c in test.cascades:
    seen[c.users] = True
  users = np.flatnonzero(seen)
  off = ~np.eye(len(users), dtype=bool)
  curve = analysis.pr_curve(counts[np.ix_(users, users)][off],
                            truth[np.ix_(users, users)][off])
  best = curve['best']
  return dict(precision=float(curve['precision'][best]),
              recall=float(curve['recall'][best]),
              f1=float(curve['f1'][best]), pr_auc=curve['average_precision'])


def network_table(plan: Plan, net_rows) -> list[str]:
  """Network inference per data set and attention model, and the baseline."""
  keys = ('pr_auc', 'precision', 'recall', 'f1', 'parent_accuracy',
          'parent_accuracy_previous_event')
  lines = ['| data set | model | n | PR-AUC | precision* | recall* | F1* | '
           'parent acc. (argmax attention) | parent acc. (previous event) |',
           '|---|---|---|---|---|---|---|---|---|']
  for dataset in plan.datasets:
    mine = [r for r in net_rows if r['dataset'] == dataset]
    if not mine:
      continue
    for model in ('cyan', 'cyan_cov'):
      these = [r for r in mine if r['model'] == model]
      if these:
        cells = [tables.fmt(tables.metric_stats(these, k)) for k in keys]
        lines.append(f'| {dataset} | {LABELS[model]} | {len(these)} | ' +
                     ' | '.join(cells) + ' |')
    if dataset in GENERATED:
      prev = previous_event_network(dataset, plan.mode)
      if prev:
        lines.append(f'| {dataset} | previous event (no model) | 1 | ' +
                     ' | '.join(f'{prev[k]:.4f}' for k in keys[:4]) +
                     ' | — | — |')
  return lines
