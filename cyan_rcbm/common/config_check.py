"""The check a run passes before it writes anything: `validate(config)`.

Two kinds of mistakes stop here, with a `ConfigError` naming the field:

* a field that the chosen data source, file format or model variant does
  not read, but that differs from its default (`unused_fields`): e.g.
  `data.path` with a built-in `data.name`, or with RCBM's
  `data.source='planted'`, would otherwise train on other data than the
  user meant, and exit 0. The message says what would read the field;
* a value the task's own checks refuse (ranges, choices, shapes of
  per-level tuples), which the tasks would otherwise find only after they
  have created the workdir.

"Default" is the value of the config as loaded from its file and variant
(`reference`, what `cyan_rcbm.main` passes: so only values given on the
command line count), else the value in the task's config file without a
variant (`configs/<task>.py`). Rules on model and solver fields apply only
with a `reference`: config variants set such fields for every model variant
(e.g. `configs/cyan.py:tiny`'s `coverage_size`, unused by RMTPP).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import ml_collections

from cyan_rcbm import errors
from cyan_rcbm.common import config_loading

_BASE_FILES = {'cyan': 'configs/cyan.py', 'rcbm': 'configs/rcbm.py'}


@dataclasses.dataclass(frozen=True)
class _Rule:
  """`field` is read only when `used(config)`; `reader(config)` says who
  would read it (and how to get there)."""
  field: str
  used: Callable[[Any], bool]
  reader: Callable[[Any], str]
  cli_only: bool = False  # checked only against a reference (module doc)
  hint: str = ''


def _builtin(config):
  from cyan_rcbm.data import registry  # pylint: disable=g-import-not-at-top
  name = config.data.get('name', '')
  return registry.BUILTIN.get(name) if name else None


def _has_graph(config) -> bool:
  builtin = _builtin(config)
  return bool(config.data.get('graph', '')) or bool(builtin and builtin.graph)


def _cyan_rules() -> list[_Rule]:
  own_file = lambda c: not c.data.get('name', '')
  own_reader = lambda c: (f"a file of your own (data.name=''; here "
                          f'data.name={c.data.name!r}, a built-in set)')
  synthetic = lambda c: bool(_builtin(c) and _builtin(c).synthetic)
  rules = [_Rule(f'data.{key}', own_file, own_reader,
                 hint="add --config.data.name='' to read your file, or drop "
                 f'data.{key}') for key in ('path', 'format', 'graph')]
  rules += [
      _Rule('data.num_cascades', synthetic,
            lambda c: 'a generated synthetic_* set (data.name)',
            hint='use data.subsample to shorten the training data'),
      _Rule('data.lenient', lambda c: not synthetic(c),
            lambda c: 'a data file (built-in or data.path)',
            hint='generated sets have no malformed lines'),
      _Rule('data.graph_direction', _has_graph,
            lambda c: 'a graph file (data.graph, or a built-in set with a '
            'graph)'),
  ]
  cov = lambda c: c.model.variant == 'cyan_cov'
  attend = lambda c: c.model.variant != 'rmtpp'
  for key in ('coverage_size', 'coverage_cell'):
    rules.append(_Rule(f'model.{key}', cov,
                       lambda c: "model.variant='cyan_cov'", cli_only=True))
  for key in ('decoder_hidden', 'attention_size', 'dependence_length',
              'time_context', 'window_segments'):
    rules.append(_Rule(f'model.{key}', attend,
                       lambda c: "model.variant='cyan' or 'cyan_cov' (the "
                       'attention decoder)', cli_only=True))
  prior = lambda c: bool(c.model.get('transition_prior', False))
  for key in ('prior_top_m', 'prior_window', 'prior_decay', 'prior_reach'):
    rules.append(_Rule(f'model.{key}', prior,
                       lambda c: 'model.transition_prior=True',
                       cli_only=True))
  rules.append(_Rule('train.num_negatives',
                     lambda c: c.train.get('softmax', 'exact') == 'sampled',
                     lambda c: "train.softmax='sampled'", cli_only=True))
  derived = lambda c: not tuple(c.batching.bucket_lengths)
  for key in ('min_bucket', 'fine_until', 'bucket_growth'):
    rules.append(_Rule(f'batching.{key}', derived,
                       lambda c: 'derived bucket lengths (batching.'
                       'bucket_lengths=(), here '
                       f'{tuple(c.batching.bucket_lengths)})', cli_only=True))
  return rules


def _rcbm_rules() -> list[_Rule]:
  rules = [_Rule('data.path', lambda c: c.data.source == 'path',
                 lambda c: f'data.source=\'path\' (here data.source='
                 f'{c.data.source!r})',
                 hint='add --config.data.source=path to read your file, or '
                 'drop data.path')]
  for source in ('planted', 'higgs', 'cascades'):
    rules.append(_Rule(
        f'data.{source}', lambda c, s=source: c.data.source == s,
        lambda c, s=source: f'data.source={s!r} (here data.source='
        f'{c.data.source!r})'))
  rules += [
      _Rule('model.warmup_iters', lambda c: c.model.penalty == 'mle',
            lambda c: "model.penalty='mle'", cli_only=True),
      _Rule('model.restart_iters', lambda c: int(c.model.num_restarts) > 1,
            lambda c: 'model.num_restarts > 1', cli_only=True),
      _Rule('eval.bic_max_iters', lambda c: bool(tuple(
          c.eval.bic_num_filters)), lambda c: 'a BIC curve (eval.'
            'bic_num_filters, here ())', cli_only=True),
  ]
  return rules


def _get(config, dotted: str):
  node = config
  for name in dotted.split('.'):
    if not hasattr(node, 'keys') or name not in node:
      return None
    node = node[name]
  return node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node


def _base(task: str) -> ml_collections.ConfigDict:
  return config_loading.load_config(_BASE_FILES[task])


def _differs(value, default) -> bool:
  if isinstance(value, dict) and isinstance(default, dict):
    return any(_differs(value.get(k), default.get(k))
               for k in set(value) | set(default))
  if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
    return list(value) != list(default)
  return value != default


def unused_fields(config, task: str, reference=None) -> list[str]:
  """One sentence per field `config` sets that its run would not read."""
  rules = {'cyan': _cyan_rules, 'rcbm': _rcbm_rules}[task]()
  defaults = [reference] if reference is not None else []
  try:
    defaults.append(_base(task))
  except errors.ConfigError:
    pass  # an installed package without configs/: the reference alone
  if not defaults:
    return []
  out = []
  for rule in rules:
    if rule.cli_only and reference is None:
      continue
    value = _get(config, rule.field)
    if (value is None or rule.used(config)
        or not all(_differs(value, _get(d, rule.field)) for d in defaults)):
      continue
    out.append(f'config.{rule.field}={value!r} is set, but this run ignores '
               f'it: only {rule.reader(config)} reads it'
               + (f'; {rule.hint}.' if rule.hint else '.'))
  return out


def _task_checks(config, task: str) -> None:
  """The task's own value checks, run before the workdir is touched."""
  from cyan_rcbm.common import backend_defaults  # pylint: disable=g-import-not-at-top
  config = backend_defaults.resolve_config(config)  # the "auto" sizes
  if task == 'cyan':
    from cyan_rcbm.cyan import censoring  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.cyan import model as model_lib  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.data import registry  # pylint: disable=g-import-not-at-top
    registry.check_data_config(config.data)
    censoring.censor_end_of(config.train)
    from cyan_rcbm.cyan import baselines  # pylint: disable=g-import-not-at-top
    valid = model_lib.VARIANTS + baselines.NAMES
    if config.model.variant not in valid:
      raise errors.ConfigError(f'model.variant is {config.model.variant!r}; '
                               f'expected one of {valid}.')
  elif task == 'rcbm':
    from cyan_rcbm.rcbm import input_pipeline  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.rcbm import train as rcbm_train  # pylint: disable=g-import-not-at-top
    rcbm_train.level_specs(config)
    rcbm_train.solver_config(config)
    rcbm_train._fit_kwargs(config)  # pylint: disable=protected-access
    input_pipeline.check_data_config(config.data)


def validate(config, reference=None) -> None:
  """Raises `ConfigError` for the first problem set (see module docstring).

  Args:
    config: a run's config (cyan, rcbm or demo task).
    reference: the same config as loaded, before command-line overrides.
  """
  task = config.get('task', None)
  parts = ([(config.cyan, 'cyan', 'cyan.'), (config.rcbm, 'rcbm', 'rcbm.')]
           if task == 'demo' else [(config, task, '')])
  for sub, sub_task, prefix in parts:
    if sub_task not in _BASE_FILES:
      continue  # main.run names the valid tasks
    ref = None
    if reference is not None:
      ref = reference[prefix[:-1]] if prefix else reference
    variants = (list(config.cyan_variants) if task == 'demo'
                and sub_task == 'cyan' else [None])
    for variant in variants:
      checked = sub
      if variant is not None:
        checked = copy.deepcopy(sub)  # keeps the fields' types
        checked.model.variant = variant
      problems = unused_fields(checked, sub_task, ref)
      if problems:
        raise errors.ConfigError(
            ' '.join(p.replace('config.', f'config.{prefix}', 1)
                     for p in problems))
      try:
        _task_checks(checked, sub_task)
      except errors.ConfigError as e:
        raise errors.ConfigError(f'{prefix}{e}' if prefix else str(e)) from None
