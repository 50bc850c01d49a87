"""Numbers for the report: the runtime rows summarised, and their formatting."""

from __future__ import annotations

import numpy as np


def mean_std(values):
  """(mean, sample std) of the non-None values; None where undefined."""
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return None, None
  return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def summarise_runtime(rows):
  """(dataset, model, n) -> mean/std of seconds and log perplexity."""
  groups: dict[tuple, list] = {}
  for r in rows:
    groups.setdefault((r['dataset'], r['model'], r['n_train']), []).append(r)
  out = {}
  for key, rs in sorted(groups.items()):
    sec = mean_std([r['seconds'] for r in rs])
    nll = mean_std([r['log_perplexity'] for r in rs])
    med = mean_std([r['median_neg_log_prob'] for r in rs])
    rec = mean_std([r['recon_rel_error'] for r in rs])
    common = {k: mean_std([r.get(k) for r in rs])
              for k in ('warmup_seconds', 'nll_per_sample', 'nll_per_entry')}
    out[key] = {'reps': len(rs), 'seconds': sec, 'log_perplexity': nll,
                **common,
                'median_neg_log_prob': med, 'recon_rel_error': rec,
                'num_params': rs[0]['num_params'],
                'notes': sorted({r['note'] for r in rs if r['note']})}
  return out


def fmt(x, digits=3):
  """A number or a (mean, std) pair for a table cell; '-' if missing."""
  if x is None:
    return '-'
  if isinstance(x, tuple):
    m, sd = x
    if m is None:
      return '-'
    return f'{m:.{digits}g}' + (f' ± {sd:.2g}' if sd is not None else '')
  return f'{x:.{digits}g}'
