"""results.json, results.md and the summary figures of the RCBM reproduction."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.experiments.rcbm import claims
from cyan_rcbm.experiments.rcbm import figures
from cyan_rcbm.experiments.rcbm import report_runtime
from cyan_rcbm.experiments.rcbm import tables
from cyan_rcbm.experiments.rcbm.tables import fmt
from cyan_rcbm.experiments.rcbm.plan import LABELS, MODELS, Plan
from cyan_rcbm.rcbm import plots


def write_results(plan: Plan, results: dict[str, Any]) -> str:
  """results.json, results.md and the runtime / FS-LS figures."""
  os.makedirs(plan.results_dir, exist_ok=True)
  summary = {}
  if 'runtime' in results:
    summary = tables.summarise_runtime(results['runtime']['rows'])
    for dataset in plan.settings.runtime_datasets:
      path = os.path.join(plan.results_dir, f'runtime_{dataset}.png')
      figures.plot_runtime(summary, dataset, path)
  if 'fsls' in results:
    figures.plot_fsls(results['fsls'],
                      os.path.join(plan.results_dir, 'fsls.png'))
  if 'kselect' in results:
    for name, entry in results['kselect'].items():
      for level in (1, 2):
        e = entry[f'level{level}']
        plots.plot_k_selection(
            np.asarray(e['cumulative_activation']), e['knee'],
            os.path.join(plan.results_dir, f'kselect_{name}_level{level}.png'),
            bic=e['bic'], title=f'{name}, level {level}: F(m) vs BIC')
  blob = {'mode': plan.mode, 'settings': dataclasses.asdict(plan.settings),
          **{k: v for k, v in results.items() if k != 'runtime'}}
  if 'runtime' in results:
    blob['runtime'] = results['runtime']['rows']
    blob['runtime_skipped'] = results['runtime']['skipped']
  workdir_lib.dump_json(blob, os.path.join(plan.results_dir, 'results.json'))
  md = _markdown(plan, results, summary)
  path = os.path.join(plan.results_dir, 'results.md')
  with open(path, 'w') as f:
    f.write(md)
  return path


def _markdown(plan: Plan, results, summary) -> str:
  s = plan.settings
  lines = [
      '# RCBM reproduction: results', '',
      f'Mode `{plan.mode}`; written by `scripts/reproduce_rcbm.py` '
      f'({time.strftime("%Y-%m-%d %H:%M")}). The paper\'s Twitter-keyword and '
      'Yelp sets are not available: "higgs" is the Higgs-Twitter activity '
      'file as dynamics (the seven Twitter features per target user, '
      '10-minute bins, peak at bin 10; `cyan_rcbm.data.higgs`) and '
      '"planted" is data drawn from the model itself (equations.md B3) with '
      f'{dict(s.planted)}.', '']
  carried = results.get('carried')
  if carried:
    lines += [f'The {", ".join(carried["experiments"])} results are those of '
              f'an earlier full run (`{carried["from"]}`, same settings for '
              'them); the runtime study and the FS/LS traces are from this '
              'run.', '']
  table = claims.paper_claims(plan, results, summary)
  if table:
    lines += ['## The paper\'s claims and ours', '',
              '| paper | ours | verdict |', '|---|---|---|']
    lines += [f'| {a} | {b} | {c} |' for a, b, c in table]
    lines.append('')
  if summary:
    lines += report_runtime.runtime_md(plan, results, summary)
  if 'fsls' in results:
    lines += report_runtime.fsls_md(plan, results['fsls'])
  if 'kselect' in results:
    lines += _kselect_md(plan, results['kselect'])
  if 'composition' in results:
    c = results['composition']
    lines += ['## Compositional structures (Figs. 11-14)', '',
              f'A 2-level RCBM on {c["dataset"]} ({c["n"]} samples), K = '
              f'{c["num_filters"]} (the knees of F(m) above), Tw = '
              f'{c["filter_length"]}, pool {c["pool"]}'
              + (f': level-1 filters span '
                 f'{c["filter_length"] * c["bin_seconds"] / 60:g} minutes, '
                 'level-2 filters about '
                 f'{c["filter_length"] * c["pool"] * c["bin_seconds"] / 60:g}'
                 ' minutes' if c['dataset'] == 'higgs' else '')
              + '. Filters are ranked by activation strength (Eq. 10); '
              'the panel titles give each filter\'s share.', '']
    lines += [f'![{f}]({f})' for f in c['figures']] + ['']
    lines.append('Activation shares: ' + '; '.join(
        f'level {i + 1}: ' + ', '.join(f'{100 * v:.0f}%' for v in share)
        for i, share in enumerate(c['strength_share'])))
    lines.append('')
    if 'later_events_by_filter' in c:
      lines += ['Mean activity of the samples in the top 10% of each '
                'filter\'s activation (all samples: window '
                f'{c["window_events_by_filter"][0]["mean_all"]:.1f}, later '
                f'{c["later_events_by_filter"][0]["mean_all"]:.1f} events):',
                '', '| level | filter | window events | later events |',
                '|---|---|---|---|']
      for lvl, (we, le) in enumerate(zip(c['window_events_by_filter'],
                                         c['later_events_by_filter'])):
        for k, (a, b) in enumerate(zip(we['mean_top'], le['mean_top'])):
          lines.append(f'| {lvl + 1} | W{lvl + 1},{k + 1} | {a:.1f} | '
                       f'{b:.1f} |')
      lines.append('')
  if 'anomalies' in results:
    lines += _anomalies_md(results['anomalies'])
  if 'forecast' in results:
    lines += _forecast_md(results['forecast'])
  if plan.notes and os.path.exists(plan.notes):
    with open(plan.notes) as f:
      lines += ['', f.read()]
  return '\n'.join(lines) + '\n'


def _kselect_md(plan, kselect):
  s = plan.settings
  lines = ['## Choosing K (Figs. 9-10)', '',
           f'One RCBM with K1 = K2 = {max(s.kselect_ks)} gives F(m) of both '
           f'levels (knee: the smallest m with F(m+1) - F(m) <= '
           f'{s.knee_eps}); BIC = 2 log L - p log n, p = K D Tw + 2, comes '
           f'from one CBM per K in {list(s.kselect_ks)} on that level\'s input '
           f'(level 2: the pooled level-1 activations of the K='
           f'{max(s.kselect_ks)} model), '
           f'at most {s.kselect_max_iters} outer iterations each, under the '
           'two readings of Eq. 1 the runtime study uses: per sample '
           '(equations.md B3: half-normal error norm, exponential activation, one '
           'density per sample) and per entry (Gaussian residual of each of '
           'the D T entries, same p).', '']
  for name, e in kselect.items():
    lines.append(f'**{name}** ({e["n"]} samples)')
    lines.append('')
    lines.append('| level | F(m), m = 1..K | knee | BIC per sample: best K '
                 '| BIC per sample | BIC per entry: best K | BIC per entry |')
    lines.append('|---|---|---|---|---|---|---|')
    for level in (1, 2):
      lv = e[f'level{level}']
      f_m = ', '.join(f'{v:.2f}' for v in lv['cumulative_activation'][1:])
      bic = ', '.join(f'{k}: {v:.4g}' for k, v in zip(
          lv['bic']['num_filters'], lv['bic']['bic']))
      gauss = ', '.join(f'{k}: {v:.4g}' for k, v in zip(
          lv['bic']['num_filters'], lv['bic']['bic_gaussian']))
      lines.append(f'| {level} | {f_m} | {lv["knee"]} | {lv["bic"]["best"]} '
                   f'| {bic} | {lv["bic"]["best_gaussian"]} | {gauss} |')
    lines += ['', ' '.join(f'![kselect_{name}_level{lv}](kselect_{name}_level'
                           f'{lv}.png)' for lv in (1, 2)), '']
  return lines


def _anomalies_md(anom):
  real, planted = anom['real'], anom['planted']
  lines = ['## Anomaly detection (Tables 2-3)', '',
           f'Anomaly score `-log P(X)` (Eq. 12) under the composition model, '
           f'over all {real["n"]} {real["dataset"]} samples (in-sample, as '
           'the paper). The ten lowest-probability samples (ids are Higgs '
           'user ids; "volume" = the target\'s lines in the whole file, the '
           'frequency ranking; totals and peaks per feature over the '
           'window):', '',
           '| rank | id | -log P | volume | window | later | totals '
           '(init, ft-prop, ft-comm, rec-prop, rec-comm, diam, lcc) | peaks |',
           '|---|---|---|---|---|---|---|---|']
  for it in real['lowest_probability']:
    totals = ', '.join(f'{v:g}' for v in it['feature_totals'].values())
    peaks = ', '.join(f'{v:g}' for v in it['feature_peaks'].values())
    lines.append(f'| {it["rank"]} | {it["id"]} | {it["neg_log_prob"]:.1f} | '
                 f'{it["volume"]:g} | {it.get("window_events", "-")} | '
                 f'{it.get("later_events", "-")} | {totals} | {peaks} |')
  lines += ['', f'![anomalies]({real["figure"]})', '',
            f'Top-{real["top_k"]} anomalies vs the top-{real["top_k"]} by '
            f'frequency (lines in the file): '
            f'{real["overlap_top_k_with_frequency"]} in common; vs the top '
            f'by window volume: {real["overlap_top_k_with_window_volume"]}. '
            f'Spearman correlation of the score with frequency '
            f'{real["spearman_score_vs_frequency"]:.2f}, with window volume '
            f'{real["spearman_score_vs_window_volume"]:.2f}.', '',
            f'**Planted anomalies** (training: {planted["n_train"]} normal '
            f'samples; test: {planted["counts"]}; "foreign_filters" = samples '
            'from filters outside the learned set, "shuffled_rows" = normal '
            'samples with permuted feature rows). ROC-AUC:', '',
            '| score | all anomalies | foreign filters | shuffled rows |',
            '|---|---|---|---|']
  for name, e in planted['auc'].items():
    lines.append(f'| {name} | {e["all"]:.3f} | {e["foreign_filters"]:.3f} | '
                 f'{e["shuffled_rows"]:.3f} |')
  lines += ['', 'rcbm: -log P of the 2-level RCBM; cbm_level1: its level 1 '
            'alone; rcbm_error_only: the level-1 error term '
            '`-log P(X | h)` alone (not in the paper: a diagnostic, see the '
            'discussion); sc, ssm: -log P of the baselines; volume: the sum '
            'of the sample; peak: its largest entry.', '']
  return lines


def _forecast_md(fc):
  lines = ['## Forecasting (Tables 5-6)', '',
           f'{fc["dataset"]}: input = each sample up to bin {fc["cut_bin"]} '
           '(the Higgs peak bin is 10: "only the data up to its peak usage '
           f'time is used"), target = {fc["target"]}. Strict time split: '
           f'cutoff = the {100 * 0.6:.0f}% quantile of window ends; training '
           'samples ended (input and target) by the cutoff, test samples are '
           f'forecast after it ({fc["num_train"]} train, {fc["num_test"]} '
           f'test, {fc["dropped_at_cutoff"]} spanning the cutoff dropped). '
           f'RCBMs (K = {fc["num_filters"]}, and one level with '
           f'{2 * fc["num_filters"][0]} filters for H1^2) and every '
           'hyper-parameter are fitted on the training split only. Feature '
           f'sizes: {fc["feature_dims"]}. Mean target: train '
           f'{fc["target_mean"]["train"]:.3f}, test '
           f'{fc["target_mean"]["test"]:.3f}.', '',
           '| model | features | RMSE | MAE | rank |', '|---|---|---|---|---|']
  for r in fc['rows']:
    lines.append(f'| {r["model"]} | {r["features"]} | {r["rmse"]:.4f} | '
                 f'{r["mae"]:.4f} | {r["rank"] if r["rank"] else "-"} |')
  lines.append('')
  return lines
