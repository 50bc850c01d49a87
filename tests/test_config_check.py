"""Tests for cyan_rcbm.common.config_check: ignored fields, early checks."""

import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import config_check
from cyan_rcbm.common import config_loading

_VARIANTS = (
    ['configs/cyan.py'] + [f'configs/cyan.py:{v}' for v in (
        'tiny', 'synthetic_cp_exp', 'cyanrnn_cp_exp', 'twitter',
        'topolstm_twitter')]
    + ['configs/rcbm.py:tiny', 'configs/rcbm.py:synthetic',
       'configs/rcbm.py:twitter_higgs', 'configs/rcbm.py:cascades_android',
       'configs/demo.py', 'configs/demo.py:tiny'])


@pytest.mark.parametrize('spec', _VARIANTS)
def test_every_shipped_variant_passes_as_loaded(spec):
  config = config_loading.load_config(spec)
  config_check.validate(config, config_loading.load_config(spec))
  config_check.validate(config)  # as a library call (no reference)


def test_the_default_rcbm_config_needs_a_path():
  with pytest.raises(errors.ConfigError, match='data.path is empty'):
    config_check.validate(config_loading.load_config('configs/rcbm.py'))


def _check(spec, **overrides):
  config = config_loading.load_config(spec, **overrides)
  config_check.validate(config, config_loading.load_config(spec))


@pytest.mark.parametrize('spec, overrides, message', [
    ('configs/cyan.py:tiny', dict(data__graph='g.txt'),
     "config.data.graph='g.txt' is set, but this run ignores it"),
    ('configs/cyan.py:tiny', dict(data__lenient=True),
     'only a data file (built-in or data.path) reads it'),
    ('configs/cyan.py:tiny', dict(data__graph_direction='reverse'),
     'only a graph file'),
    ('configs/cyan.py:tiny', dict(model__variant='rmtpp',
                                  model__attention_size=3),
     "config.model.attention_size=3 is set, but this run ignores it"),
    ('configs/cyan.py:tiny', dict(model__variant='cyan',
                                  model__coverage_cell='tanh'),
     "only model.variant='cyan_cov' reads it"),
    ('configs/rcbm.py:tiny', dict(data__higgs__num_bins=30),
     "config.data.higgs={'min_events': 10, 'mode': 'target', 'num_bins': 30} "
     "is set, but this run ignores it: only data.source='higgs'"),
    ('configs/rcbm.py:twitter_higgs', dict(data__planted__noise=0.5),
     "only data.source='planted'"),
    ('configs/cyan.py:tiny', dict(batching__min_bucket=4),
     'only derived bucket lengths (batching.bucket_lengths=(), here (32,))'),
    ('configs/rcbm.py:tiny', dict(model__warmup_iters=3),
     "only model.penalty='mle' reads it"),
    ('configs/rcbm.py:tiny', dict(model__num_restarts=1,
                                  model__restart_iters=5),
     'only model.num_restarts > 1 reads it'),
    ('configs/rcbm.py:twitter_higgs', dict(eval__bic_max_iters=7),
     'only a BIC curve'),
    ('configs/demo.py:tiny', dict(cyan__data__path='x.jsonl'),
     "config.cyan.data.path='x.jsonl' is set"),
    ('configs/rcbm.py:tiny', dict(model__num_filters=(3, 3, 3)),
     'model.num_filters has 3 entries for 2 levels'),
    ('configs/rcbm.py:tiny', dict(data__scale='max'), 'data.scale must be'),
    ('configs/cyan.py:tiny', dict(train__censor_end=-1.0),
     'train.censor_end must be'),
    ('configs/cyan.py:tiny', dict(data__split='by_user'), 'data.split='),
])
def test_fields_a_run_ignores_and_bad_values_are_errors(spec, overrides,
                                                        message):
  with pytest.raises(errors.ConfigError) as e:
    _check(spec, **overrides)
  assert message in str(e.value)


def test_values_of_the_variant_or_the_base_default_are_not_reported():
  # :tiny sets coverage_size=4 for every model variant: not the user's.
  _check('configs/cyan.py:tiny', model__variant='rmtpp')
  # back to the base default (0: the paper's 20,000), on a file source.
  _check('configs/cyan.py:tiny', data__name='', data__path='x.jsonl',
         data__format='jsonl', data__num_cascades=0)
  # a library call has no reference: model-variant fields are not checked.
  config = config_loading.load_config('configs/cyan.py:tiny',
                                      model__variant='rmtpp',
                                      model__attention_size=3)
  config_check.validate(config)
