"""results.md sections of the runtime study (Figs. 5-8) and the FS/LS traces."""

from __future__ import annotations

from cyan_rcbm.experiments.rcbm.plan import LABELS, MODELS, RCBM_STEPS
from cyan_rcbm.experiments.rcbm.tables import fmt

_SCORES = [
    '**One likelihood per comparison.** Every model is scored on the held-out '
    'samples under the same two families, both readings of Eq. 1 '
    '(`X = Xhat + E`), with `Xhat` the model\'s reconstruction (RCBM: '
    'level 1 `sum_k W_k (x) h_k`, h inferred by the h-step; SC: its atoms '
    'and inferred codes; cAE: decoder of the encoder\'s codes; SSM: the '
    'Kalman-smoothed mean `C E[z_t | y_1..y_T]`) and the residual scale '
    'fitted on the training samples (`sigma^2 = mean_i e_i^2`, '
    '`e_i = ||X_i - Xhat_i||_F`; `cyan_rcbm.rcbm.likelihood.residual_nll`):',
    '',
    '* **per entry** (Gaussian reading): `E[d, t] ~ N(0, s^2)` independently, '
    '`s^2 = sigma^2 / (D T)`; the column is `-mean log p` in nats per entry '
    'of X, the kind of density SSM\'s exact marginal is;',
    '* **per sample** (equations.md B3, the paper\'s Figs. 3-4): `e_i ~ '
    'HalfNormal(sigma)`; nats per sample.',
    '',
    'Per entry and per sample differ by the constant `log(D T / 4) / 2` '
    '(2.33 nats for D T = 420): both are `-log sigma - e^2 / (2 sigma^2)` '
    'plus a constant, so they rank the models alike and give the same '
    'gaps. The reading matters where the total log-likelihood is weighed '
    'against something else, as in BIC (see "Choosing K").', '',
    'The models\' own likelihoods are kept as the last columns ("own '
    '-log P"), but they are of different kinds and do not compare across '
    'models: RCBM (Eq. 12) sums a half-normal per level and an exponential '
    'of the top activation, SC and cAE the same form over their levels, '
    'SSM is the exact marginal density of all D T entries. RCBM\'s own '
    'perplexity on Higgs is dominated by a few heavy-tailed held-out '
    'samples (its mean is far above its median); it is reported as a log, '
    'never as `exp(.)`.', '']


def runtime_md(plan, results, summary) -> list[str]:
  """The runtime / held-out likelihood section."""
  s = plan.settings
  lines = [
      '## Runtime and held-out likelihood (Figs. 5-8)', '',
      f'Two levels, K = {s.num_filters} per level, Tw = {s.filter_length}, '
      f'pool {s.pool}, lam = {s.lam} (fixed sigma^2/beta, RCBM\'s default), '
      f'{s.num_restarts} initialisation, {s.runtime_max_iters} outer '
      f'iterations per level at most (tol {s.tol:g}), {s.inner_max_iters} '
      f'FISTA iterations per h-step, for all three step rules. '
      f'Planned: {s.reps} repetitions (different training subsets and '
      f'seeds) for n < {s.large_n}, {s.reps_large} at n >= {s.large_n}; '
      'the "reps" column gives those run, the others are listed under '
      '"Not run". Mean ± std; the 2 CPU cores were shared with other jobs, '
      f'so times are noisy. Held-out: {s.num_test} fixed samples. '
      '"seconds" is training time without compilation: a 1-iteration '
      'warm-up fit on the same shapes runs first, and its time '
      '(compilation plus one outer iteration) is the "compile s" column; '
      'the held-out evaluation is not timed. Higgs runtime set: targets '
      'with >= '
      f'{s.higgs_runtime_min_events} lines (21,557 samples; the standard '
      f'>= {s.higgs_min_events} set has only 5,641), scaled by per-feature '
      'std of the training pool; planted data unscaled.', '',
      'Step rules: RCBM-FS uses the fixed steps of Eq. 9; RCBM-LS '
      'backtracks from the last accepted step (warm-started, few trials '
      'after the first iterations); RCBM-LS (paper) backtracks afresh from '
      'the initial step at every h- and W-update, the line search the '
      'paper\'s "Stepsize assignment" paragraph rejects (`cbm_step`).', '',
      'Parameter counts: RCBM `sum_l (K_l D_l Tw_l + 2)`; SC and SSM are '
      'matched to it (the smallest size with at least as many parameters, '
      'as in the paper); cAE has the paper\'s architecture with the same K '
      'and Tw, K^2 maps at level 2, and many more parameters.', ''] + _SCORES
  for dataset in s.runtime_datasets:
    lines += [f'### {dataset}', '',
              f'![runtime_{dataset}](runtime_{dataset}.png)', '',
              '| model | n | reps | params | seconds | compile s | -log p '
              'per entry | -log p per sample | own -log P (mean) | own -log P '
              '(median) | rel. recon. error | notes |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for model in MODELS:
      for n in s.n_grid[dataset]:
        e = summary.get((dataset, model, n))
        if e is None:
          continue
        lines.append(
            f'| {LABELS[model]} | {n} | {e["reps"]} | {e["num_params"]} | '
            f'{fmt(e["seconds"])} | {fmt(e["warmup_seconds"])} | '
            f'{fmt(e["nll_per_entry"], 4)} | {fmt(e["nll_per_sample"], 4)} | '
            f'{fmt(e["log_perplexity"], 4)} | '
            f'{fmt(e["median_neg_log_prob"], 4)} | '
            f'{fmt(e["recon_rel_error"])} | {"; ".join(e["notes"])} |')
    lines.append('')
  skipped = results['runtime']['skipped']
  if skipped:
    lines += ['Not run: ' + '; '.join(
        f'{k["dataset"]} {LABELS.get(k["model"], k["model"])} '
        f'n={k["n_train"]} ({k["reason"]})' for k in skipped), '']
  return lines


def fsls_md(plan, fsls) -> list[str]:
  """The objective-against-time section of the three step rules."""
  s = plan.settings
  steps = [(m, st) for m, st in RCBM_STEPS.items()
           if all(st in e['traces'] for e in fsls.values())]
  lines = ['## RCBM-FS vs the line searches against wall time', '',
           f'One level, K={s.num_filters}, Tw={s.filter_length}, '
           f'tol {s.fsls_tol:g}, at most {s.fsls_max_iters} outer '
           'iterations; compile time excluded (a warm-up fit runs first). '
           'Targets: the worst of the final objectives (equal quality, '
           'which every run reaches), then within 5%, 1%, 0.1% of the best. '
           '![fsls](fsls.png)', '',
           '| set | target | ' + ' | '.join(f'{LABELS[m]} (s)'
                                          for m, _ in steps)
           + ' | LS / FS | LS (paper) / FS |',
           '|---|---|' + '---|' * (len(steps) + 2)]
  for dataset, e in fsls.items():
    for key, w in e['time_to_objective'].items():
      label = ('equal quality' if key == 'equal_quality'
               else key.replace('_', ' ') + ' of best')
      cells = ' | '.join(fmt(w['seconds'].get(st)) for _, st in steps)
      lines.append(f'| {dataset} (n={e["n"]}) | {label} = '
                   f'{w["objective"]:.4g} | {cells} | '
                   f'{fmt(w.get("ls_over_fs"))} | '
                   f'{fmt(w.get("ls_paper_over_fs"))} |')
  lines.append('')
  return lines
