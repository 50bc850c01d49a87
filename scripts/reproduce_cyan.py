"""Reproduces the CYAN-RNN paper's experiments (section 4, Figs. 4-6).

What runs, the protocol and what is written: `cyan_rcbm.experiments.reproduce_cyan`.

    # the full reproduction (hours), then publish tables and figures:
    python scripts/reproduce_cyan.py --out_dir=runs/reproduce \
        --results_dir=docs/cyan_results --notes=docs/cyan_results/notes.md
    # a subset of data sets, data and epochs (minutes):
    python scripts/reproduce_cyan.py --out_dir=runs/quick --quick
    # your own files (and baselines), with the real-data defaults:
    python scripts/reproduce_cyan.py --out_dir=runs/mine \
        --files=mine=my_cascades.jsonl:jsonl:my_edges.txt
    # the test-suite version (2 data sets, tiny models, a few steps):
    python scripts/reproduce_cyan.py --out_dir=/tmp/tiny --tiny

A re-run with the same --out_dir skips finished runs and resumes the rest.
"""

import os
import sys
from typing import Sequence

from absl import app
from absl import flags
import jax

from cyan_rcbm import errors
from cyan_rcbm.experiments import reproduce_cyan
from cyan_rcbm.experiments.cyan import plan as plan_lib

_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Run folders go here.')
_RESULTS_DIR = flags.DEFINE_string(
    'results_dir', None, 'results.json/.md and figures (default: out_dir).')
_QUICK = flags.DEFINE_bool('quick', False, 'Subset of data sets, data and '
                           'epochs (under 10 minutes).')
_TINY = flags.DEFINE_bool('tiny', False, 'Test-suite mode: 2 data sets, tiny '
                          'models, a handful of steps.')
_DATASETS = flags.DEFINE_list('datasets', None, 'Data sets (default: by mode).')
_MODELS = flags.DEFINE_list(
    'models', None, f'Models (default: all {reproduce_cyan.MODELS}).')
_SEEDS = flags.DEFINE_integer('seeds', None, 'Seeds of the neural models '
                              '(default: 3 full, 1 quick/tiny).')
_FILES = flags.DEFINE_list(
    'files', [], 'Your own cascade files, each name=path:format[:graph] '
    '(format: jsonl, cyanrnn, forest or topolstm); each runs as a data set '
    'with the real-data defaults of configs/cyan.py:real and is included in '
    'the default data sets.')
_NOTES = flags.DEFINE_string('notes', None, 'Markdown appended to results.md '
                             '(discussion of the numbers).')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if not _OUT_DIR.value:
    raise app.UsageError('--out_dir is required.')
  if _QUICK.value and _TINY.value:
    raise app.UsageError('--quick and --tiny are exclusive.')
  mode = 'tiny' if _TINY.value else 'quick' if _QUICK.value else 'full'
  try:
    own = [plan_lib.add_file(spec) for spec in _FILES.value]
    datasets = _DATASETS.value or (own or None)
    plan = reproduce_cyan.make_plan(
        _OUT_DIR.value, mode, datasets=datasets, models=_MODELS.value,
        seeds=_SEEDS.value, results_dir=_RESULTS_DIR.value,
        notes=_NOTES.value)
  except errors.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  # Reuse compiled programs across runs and invocations (seeds and resumed
  # runs compile the same shapes); this process only, not the library.
  jax.config.update('jax_compilation_cache_dir',
                    os.path.join(plan.out_dir, 'jax_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  _, failures = reproduce_cyan.reproduce(
      plan, command=' '.join(['python'] + sys.argv))
  if failures:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
