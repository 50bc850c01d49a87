"""The metric tables of results.md: mean ± std over seeds, and the claims."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from cyan_rcbm.experiments.cyan.plan import LABELS, MODELS, NEURAL


def metric_stats(rows: Iterable[dict[str, Any]], key: str
           ) -> tuple[float, float, int] | None:
  """(mean, sample std, n) of `key` over the rows that have it, else None."""
  values = [r[key] for r in rows if r.get(key) is not None]
  if not values:
    return None
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def fmt(stat, digits: int = 4) -> str:
  """A `metric_stats` cell: 'mean' for one run, 'mean ± std' for several."""
  if stat is None:
    return '—'
  mean, std, n = stat
  return f'{mean:.{digits}f}' if n == 1 else f'{mean:.{digits}f} ± {std:.{digits}f}'


def metric_table(rows, datasets, models, keys, header_names=None) -> list[str]:
  """One markdown table per data set: a row per model, a column per key."""
  lines = []
  for dataset in datasets:
    mine = [r for r in rows if r['dataset'] == dataset]
    if not mine:
      continue
    unit = next((r['time_unit'] for r in mine if r.get('time_unit')), '')
    split = mine[0]['split']
    lines += [f'#### {dataset} (split: {split}; times in {unit})', '',
              '| model | n | ' + ' | '.join(header_names or keys) + ' |',
              '|---|---|' + '---|' * len(keys)]
    for model in models:
      these = [r for r in mine if r['model'] == model]
      if not these:
        continue
      cells = [fmt(metric_stats(these, k), 2 if k == 'rmse' and
                   (metric_stats(these, k) or (0,))[0] > 100 else 4)
               for k in keys]
      lines.append(f'| {LABELS[model]} | {len(these)} | ' + ' | '.join(cells)
                   + ' |')
    notes = {r['model']: r['note'] for r in mine if r.get('note')}
    for model, note in notes.items():  # first sentence of the error
      lines.append(f'\n_{LABELS[model]}: {note.split(". ")[0]}._')
    lines.append('')
  return lines


def claims_table(rows, datasets) -> list[str]:
  """The paper's synthetic-data claims against the measured means."""
  lines = ['| data set | metric | RMTPP | CYAN-RNN | CYAN-RNN(cov) | '
           'cov >= CYAN? | CYAN > RMTPP? |', '|---|---|---|---|---|---|---|']
  for dataset in datasets:
    for key in ('acc@1', 'acc@5', 'mrr'):
      s = {m: metric_stats([r for r in rows if r['dataset'] == dataset and
                            r['model'] == m], key) for m in NEURAL}
      if any(v is None for v in s.values()):
        continue
      cov_gap = s['cyan_cov'][0] - s['cyan'][0]
      cyan_gap = s['cyan'][0] - s['rmtpp'][0]
      lines.append(
          f'| {dataset} | {key} | {fmt(s["rmtpp"])} | {fmt(s["cyan"])} | '
          f'{fmt(s["cyan_cov"])} | {_verdict(cov_gap, s["cyan_cov"], s["cyan"], True)} | '
          f'{_verdict(cyan_gap, s["cyan"], s["rmtpp"], False)} |')
  return lines


def _verdict(gap: float, a, b, allow_equal: bool) -> str:
  noise = float(np.hypot(a[1], b[1]))
  holds = gap >= 0 if allow_equal else gap > 0
  word = 'yes' if holds else 'no'
  if abs(gap) <= noise:
    word += ' (within seed std)'
  return f'{word}, {gap:+.4f}'


def rmse_ratio_lines(rows, datasets) -> list[str]:
  """The best neural RMSE against the Poisson and Hawkes RMSEs."""
  lines = ['| data set | best neural RMSE | Poisson RMSE | Hawkes RMSE | '
           'neural / best point process |', '|---|---|---|---|---|']
  for dataset in datasets:
    s = {m: metric_stats([r for r in rows if r['dataset'] == dataset and
                          r['model'] == m], 'rmse') for m in MODELS}
    neural = [(s[m][0], m) for m in NEURAL if s.get(m)]
    points = [s[m][0] for m in ('poisson', 'hawkes') if s.get(m)]
    if not neural or not points:
      continue
    best, model = min(neural)
    lines.append(f'| {dataset} | {best:.4g} ({LABELS[model]}) | '
                 f'{fmt(s.get("poisson"))} | {fmt(s.get("hawkes"))} | '
                 f'{best / min(points):.3f} |')
  return lines
