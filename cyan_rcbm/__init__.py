"""cyan_rcbm: CYAN-RNN and RCBM for information cascades and social dynamics.

The public API (names are imported on first use, so `import cyan_rcbm` stays
cheap):

    import cyan_rcbm as cr
    splits = cr.load_splits(cr.load_config('configs/cyan.py:tiny').data)
    model = cr.train_cyan(cr.load_config('configs/cyan.py:tiny'), 'runs/tiny')
    model.evaluate('test'); model.predict(splits.test.cascades[:3], k=5)
    model.alignments(cascade); model.infer_network('test')
    model.sample(prefix, num_samples=10, max_events=20, horizon=5.0)
    model.forecast_size(prefix, horizon=20.0)
    calibration = model.calibrate_forecasts('valid', cut=1.0, horizon=20.0)
    model.forecast_size(prefix, horizon=20.0, observed_until=t0 + 1.0,
                        calibration=calibration)

Data: `read_cascades`, `write_cascades`, `load_splits`, `make_synthetic`,
`load_config`, `Cascade`, `CascadeDataset`, `Dynamics`. CYAN-RNN / RMTPP:
`train_cyan`, `load_cyan`, `create_cyan`, `CyanModel`, `Prediction`,
`SizeForecast`, `ForecastCalibration`, `observed_prefix`. RCBM: the
estimator `RCBM` (`RCBM(num_levels=2, num_filters=10).fit(x)`, then
`transform`, `score_samples`, `anomaly_scores`, `filters_`, `save` /
`RCBM.load`), and the functions under it: `LevelSpec`, `SolverConfig`,
`fit_rcbm`, `RCBMModel` (a trained model), `infer`, `features`,
`log_prob`, `anomaly_scores`, `save_rcbm`, `load_rcbm`, `knee`,
`cumulative_activation`, `activation_strength`, `load_dynamics`,
`read_dynamics`, `make_planted`, `higgs_dynamics`. Errors: `InputError`,
`DataError`, `ConfigError`.
"""

from __future__ import annotations

import importlib
from typing import Any

from cyan_rcbm.errors import ConfigError, DataError, InputError

__version__ = '0.1.0'

# public name -> (module, attribute)
_EXPORTS = {
    # data
    'read_cascades': ('cyan_rcbm.data.readers', 'read_cascades'),
    'write_cascades': ('cyan_rcbm.data.writers', 'write_cascades'),
    'load_splits': ('cyan_rcbm.data.registry', 'load_splits'),
    'make_synthetic': ('cyan_rcbm.data.synthetic', 'make_synthetic'),
    'load_config': ('cyan_rcbm.common.config_loading', 'load_config'),
    'Cascade': ('cyan_rcbm.data.types', 'Cascade'),
    'CascadeDataset': ('cyan_rcbm.data.types', 'CascadeDataset'),
    'Dynamics': ('cyan_rcbm.data.types', 'Dynamics'),
    'ReadOptions': ('cyan_rcbm.data.readers', 'ReadOptions'),
    # CYAN-RNN / RMTPP
    'train_cyan': ('cyan_rcbm.cyan.api', 'train_cyan'),
    'load_cyan': ('cyan_rcbm.cyan.api', 'load_cyan'),
    'create_cyan': ('cyan_rcbm.cyan.api', 'create_cyan'),
    'CyanModel': ('cyan_rcbm.cyan.cyan_model', 'CyanModel'),
    'Prediction': ('cyan_rcbm.cyan.cyan_model', 'Prediction'),
    'SizeForecast': ('cyan_rcbm.cyan.sampling', 'SizeForecast'),
    'ForecastCalibration': ('cyan_rcbm.cyan.recalibration',
                            'ForecastCalibration'),
    'observed_prefix': ('cyan_rcbm.cyan.sampling', 'observed_prefix'),
    # RCBM
    'LevelSpec': ('cyan_rcbm.rcbm.rcbm', 'LevelSpec'),
    'RCBM': ('cyan_rcbm.rcbm.estimator', 'RCBM'),
    'RCBMModel': ('cyan_rcbm.rcbm.rcbm', 'RCBM'),
    'SolverConfig': ('cyan_rcbm.rcbm.cbm', 'SolverConfig'),
    'fit_rcbm': ('cyan_rcbm.rcbm.rcbm', 'fit_rcbm'),
    'infer': ('cyan_rcbm.rcbm.rcbm', 'infer'),
    'features': ('cyan_rcbm.rcbm.rcbm', 'features'),
    'log_prob': ('cyan_rcbm.rcbm.likelihood', 'log_prob'),
    'anomaly_scores': ('cyan_rcbm.rcbm.likelihood', 'anomaly_scores'),
    'save_rcbm': ('cyan_rcbm.rcbm.io', 'save_model'),
    'load_rcbm': ('cyan_rcbm.rcbm.io', 'load_model'),
    'knee': ('cyan_rcbm.rcbm.select_k', 'knee'),
    'cumulative_activation': ('cyan_rcbm.rcbm.select_k',
                              'cumulative_activation'),
    'activation_strength': ('cyan_rcbm.rcbm.select_k', 'activation_strength'),
    'load_dynamics': ('cyan_rcbm.rcbm.input_pipeline', 'load_dynamics'),
    'read_dynamics': ('cyan_rcbm.data.dynamics', 'read_dynamics'),
    'make_planted': ('cyan_rcbm.data.planted', 'make_planted'),
    'higgs_dynamics': ('cyan_rcbm.data.higgs', 'higgs_dynamics'),
}

__all__ = sorted(list(_EXPORTS) + ['ConfigError', 'DataError', 'InputError',
                                   '__version__'])


def __getattr__(name: str) -> Any:
  """Imports a public name on first use (PEP 562)."""
  try:
    module, attr = _EXPORTS[name]
  except KeyError:
    raise AttributeError(
        f'module {__name__!r} has no attribute {name!r}') from None
  value = getattr(importlib.import_module(module), attr)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
