"""Reproduces the RCBM paper's "Experimental Results" on the data we have.

The experiments, the data used and the results written:
`cyan_rcbm.experiments.reproduce_rcbm`.

    # full mode (hours on 2 shared cores), published under docs/:
    python scripts/reproduce_rcbm.py --out_dir=runs/reproduce_rcbm \
        --results_dir=docs/rcbm_results --notes=docs/rcbm_results/notes.md
    # quick mode (under 10 minutes) and the test-suite mode (seconds):
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_quick --quick
    python scripts/reproduce_rcbm.py --out_dir=/tmp/rcbm_tiny --tiny

A re-run with the same --out_dir skips every finished cell / experiment
(cached under --out_dir) and continues the rest.
"""

import sys

from absl import app
from absl import flags

from cyan_rcbm.experiments import reproduce_rcbm

_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Caches and run outputs.')
_RESULTS_DIR = flags.DEFINE_string(
    'results_dir', None, 'results.json/.md and PNGs (default: out_dir).')
_QUICK = flags.DEFINE_bool('quick', False, 'Small grid (under 10 minutes).')
_TINY = flags.DEFINE_bool('tiny', False, 'Test-suite mode (planted data '
                          'only, tiny models; seconds).')
_ONLY = flags.DEFINE_list('only', None, f'Experiments to run (default all: '
                          f'{reproduce_rcbm.EXPERIMENTS}).')
_RUNTIME_MAX_N = flags.DEFINE_integer(
    'runtime_max_n', 0, 'Runtime study: skip cells with more training '
    'samples (reported as skipped; 0 = none skipped).')
_RUNTIME_MODELS = flags.DEFINE_list(
    'runtime_models', None, f'Runtime study: models to run (default all: '
    f'{reproduce_rcbm.MODELS}); the others are reported as not run.')
_CARRY_FROM = flags.DEFINE_string(
    'carry_from', None, 'results.json of an earlier run: its kselect, '
    'composition, anomalies and forecast results are reported where those '
    'experiments are not run here (if run with the same settings for them).')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Runtime study: run no cell, report the cached '
    'ones (the others are listed as not run for time).')
_NOTES = flags.DEFINE_string('notes', None, 'Markdown appended to results.md '
                             '(discussion, filter interpretation).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if _OUT_DIR.value is None:
    raise app.UsageError('--out_dir is required')
  if _QUICK.value and _TINY.value:
    raise app.UsageError('--quick and --tiny are exclusive')
  mode = 'tiny' if _TINY.value else 'quick' if _QUICK.value else 'full'
  plan = reproduce_rcbm.make_plan(_OUT_DIR.value, mode, _RESULTS_DIR.value,
                                  _ONLY.value, _NOTES.value,
                                  runtime_max_n=_RUNTIME_MAX_N.value,
                                  runtime_models=_RUNTIME_MODELS.value,
                                  carry_from=_CARRY_FROM.value,
                                  report_only=_REPORT_ONLY.value)
  reproduce_rcbm.reproduce(plan)


if __name__ == '__main__':
  sys.exit(app.run(main))
