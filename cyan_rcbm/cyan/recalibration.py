"""Post-hoc recalibration of Monte Carlo size forecasts on held-out cascades.

Kuleshov, Fenner & Ermon, "Accurate uncertainties for deep learning using
calibrated regression" (ICML 2018), for a discrete outcome. The randomised
probability integral transform (PIT) of a true size `s` under a forecast's
samples is

    u = F(s-) + V P(s),   V ~ U(0, 1),

with `F(s-)` the fraction of samples below `s` and `P(s)` the fraction equal
to it. If the forecaster were calibrated, `u ~ U(0, 1)`. Recalibration
learns where the PITs of held-out cascades really fall: the level-`alpha`
interval uses the samples' inverted-CDF quantiles at `q_lo` and `q_hi`, the
order statistics of the held-out PITs of ranks `k_lo = floor((n + 1)(1 -
alpha)/2)` and `k_hi = n + 1 - k_lo` (the empirical quantiles at
`(1 -/+ alpha)/2` with the split-conformal finite-sample correction), instead
of the nominal `(1 -/+ alpha)/2`.

What is guaranteed: for a new cascade exchangeable with the `n` calibration
cascades (the same data source), observed up to the same `cut` after its
start and forecast at the same `horizon` with the same forecaster,
`P(q_lo <= u <= q_hi) >= alpha` over cascades and Monte Carlo draws, and the
interval holds `s` whenever `q_lo <= u < q_hi`: the two differ only on PIT
ties, i.e. truths that no sample hits (`u = 1` for a truth above every
sample). What is not: coverage for another cut,
horizon or data source; coverage conditional on a cascade's history (a
forecaster that is too wide for some cascades and too narrow for others
stays so; only the marginal rate is fixed); and an interval can only reach
the range of the Monte Carlo samples (a truth above every sample is never
covered, however wide the recalibrated levels are). The model's law is left
as it was: only the quantile levels change.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from scipy import stats

from cyan_rcbm import errors
from cyan_rcbm.cyan import sampling
from cyan_rcbm.data import types

if TYPE_CHECKING:
  from cyan_rcbm.cyan import cyan_model

# Nominal levels whose raw coverage a calibration reports.
RAW_LEVELS = (0.5, 0.8, 0.9)


def _tail_rank(n: int, level: float) -> int:
  """`floor((n + 1)(1 - level)/2)` (robust to float round-off)."""
  return int(math.floor((n + 1) * (1 - level) / 2 + 1e-9))


def min_cascades(level: float) -> int:
  """Calibration cascades needed for a recalibrated `level` interval."""
  level = sampling.check_level(level)
  return int(math.ceil(2 / (1 - level) - 1e-9)) - 1


def _too_few(num_cascades: int, level: float) -> errors.InputError:
  return errors.InputError(
      f'a recalibrated {level:g} interval needs at least '
      f'{min_cascades(level)} calibration cascades; got {num_cascades}.')


def randomised_pit(samples_NxS: np.ndarray | Sequence[np.ndarray],
                   truth_N: np.ndarray | Sequence[float],
                   rng: np.random.Generator) -> np.ndarray:
  """Randomised PIT `F(s-) + V P(s)` of each truth under its samples.

  Args:
    samples_NxS: per forecast, its Monte Carlo samples (a 2-D array or a
      list of 1-D arrays of any lengths >= 1).
    truth_N: the observed outcome of each forecast.
    rng: draws the `V ~ U(0, 1)`.

  Returns:
    float64 [N] PITs in [0, 1]; U(0, 1) for a calibrated forecaster.
  """
  truth_N = np.asarray(truth_N, np.float64).reshape(-1)
  if len(samples_NxS) != truth_N.size:
    raise errors.InputError(
        f'{len(samples_NxS)} sample sets for {truth_N.size} true values.')
  if not truth_N.size:
    raise errors.InputError('no forecasts to compute PITs of.')
  below, equal = np.empty(truth_N.size), np.empty(truth_N.size)
  for i, (s, t) in enumerate(zip(samples_NxS, truth_N)):
    s = np.asarray(s)
    if not s.size:
      raise errors.InputError(f'forecast {i} has no samples.')
    below[i], equal[i] = np.mean(s < t), np.mean(s == t)
  return below + rng.uniform(size=truth_N.size) * equal


def _check_pits(pits: np.ndarray) -> np.ndarray:
  pits = np.asarray(pits, np.float64).reshape(-1)
  if not pits.size:
    raise errors.InputError('no calibration PITs (no cascades).')
  if not np.all((pits >= 0) & (pits <= 1)):
    raise errors.InputError('PITs must lie in [0, 1] (and not be NaN).')
  return pits


def recalibrated_levels(pits: np.ndarray, level: float
                        ) -> tuple[float, float]:
  """Quantile levels `(q_lo, q_hi)` that give a `level` interval.

  The order statistics of ranks `k_lo = floor((n + 1)(1 - level)/2)` and
  `n + 1 - k_lo` of the held-out PITs (module docstring).

  Raises:
    InputError: too few PITs for `level` (it needs `min_cascades(level)`).
  """
  level = sampling.check_level(level)
  pits = np.sort(_check_pits(pits))
  n, k_lo = pits.size, _tail_rank(pits.size, level)
  if k_lo < 1:
    raise _too_few(n, level)
  return float(pits[k_lo - 1]), float(pits[n - k_lo])


def interval(samples_S: np.ndarray, q_lo: float, q_hi: float
             ) -> tuple[Any, Any]:
  """Inverted-CDF quantiles of the samples at `q_lo` and `q_hi`.

  `lower` is the smallest sample `x` with `F(x) >= q_lo`, `upper` the
  smallest with `F(x) >= q_hi` (`numpy.quantile(method='inverted_cdf')`,
  as `sampling.size_forecasts` uses); they keep the samples' type.
  """
  samples_S = np.asarray(samples_S).reshape(-1)
  if not samples_S.size:
    raise errors.InputError('no samples to take an interval of.')
  if not 0 <= q_lo <= q_hi <= 1:
    raise errors.InputError(
        f'quantile levels must satisfy 0 <= q_lo <= q_hi <= 1; got '
        f'({q_lo}, {q_hi}).')
  lo, hi = np.quantile(samples_S, [q_lo, q_hi], method='inverted_cdf')
  return lo.item(), hi.item()


def _coverage(samples_NxS, truth_N, q_lo: float, q_hi: float) -> float:
  bounds = np.array([interval(s, q_lo, q_hi) for s in samples_NxS])
  return float(np.mean((bounds[:, 0] <= truth_N) & (truth_N <= bounds[:, 1])))


@dataclasses.dataclass(frozen=True)
class ForecastCalibration:
  """Held-out PITs of one forecaster at one cut and horizon (module doc).

  Attributes:
    pits: sorted randomised PITs of the calibration cascades' true sizes.
    cut: the cascades were observed up to `start + cut`.
    horizon: sizes were forecast at `start + cut + horizon` (inf: final).
    num_cascades: calibration cascades (`pits.size`).
    num_samples: Monte Carlo samples per calibration forecast.
    raw_coverage: nominal level -> fraction of calibration cascades whose
      true size the model's raw interval held (50/80/90%).
    pit_ks_pvalue: Kolmogorov-Smirnov p-value of the PITs against U(0, 1)
      (small: the raw forecasts are miscalibrated).
  """
  pits: np.ndarray = dataclasses.field(repr=False)
  cut: float
  horizon: float
  num_cascades: int
  num_samples: int
  raw_coverage: dict[float, float]
  pit_ks_pvalue: float

  def levels(self, level: float) -> tuple[float, float]:
    """The recalibrated quantile levels `(q_lo, q_hi)` for `level`."""
    return recalibrated_levels(self.pits, level)

  def apply(self, forecasts: Sequence[sampling.SizeForecast]
            ) -> list[sampling.SizeForecast]:
    """The forecasts with recalibrated `lower`, `upper` (same samples).

    Each forecast keeps its nominal `level`; its interval becomes the
    samples' quantiles at `self.levels(level)`, and `calibrated` is True.
    The forecasts must be made at this calibration's horizon, from
    prefixes observed up to `start + cut` (the cut cannot be checked).
    """
    out = []
    for i, f in enumerate(forecasts):
      if not math.isclose(f.horizon, self.horizon, rel_tol=1e-9):
        raise errors.InputError(
            f'forecast {i} is at horizon {f.horizon:g} but the calibration '
            f'was fit at horizon {self.horizon:g}; fit one per horizon.')
      lower, upper = interval(f.samples, *self.levels(f.level))
      out.append(dataclasses.replace(f, lower=int(lower), upper=int(upper),
                                     calibrated=True))
    return out


def fit_forecast_calibration(model: cyan_model.CyanModel,
                             cascades: Sequence[types.Cascade], *,
                             cut: float, horizon: float,
                             num_samples: int = 200, seed: int = 0,
                             level: float = 0.9) -> ForecastCalibration:
  """PITs of `model`'s size forecasts on complete held-out cascades.

  Each cascade `c` is observed up to `c.times[0] + cut`
  (`sampling.observed_prefix`, `observed_until` the same time) and its size
  forecast at `c.times[0] + cut + horizon` with `num_samples` samples, in
  one batched `model.forecast_sizes` call; the PIT of its true size (the
  events with `time <= c.times[0] + cut + horizon`) is recorded. The
  cascades must be complete up to that time (every event present), and
  not used to train the model.

  Args:
    model: the forecaster.
    cascades: held-out cascades in the model's dense user ids.
    cut: observation window after each cascade's first event (> 0).
    horizon: forecast horizon after the cut (> 0; `math.inf`: final size).
    num_samples: Monte Carlo samples per forecast (use the same later).
    seed: sampling and PIT randomisation seed.
    level: the highest interval level the calibration must support
      (checks that there are `min_cascades(level)` cascades).

  Raises:
    InputError: no cascades, too few for `level`, or a bad cut/horizon.
  """
  cut = sampling.check_real('cut', cut, positive=True)
  horizon = sampling.check_real('horizon', horizon, positive=True,
                                allow_inf=True)
  cascades = list(cascades)
  if not cascades:
    raise errors.InputError('no calibration cascades given.')
  if len(cascades) < min_cascades(level):
    raise _too_few(len(cascades), level)
  cut_times = np.array([float(c.times[0]) + cut for c in cascades])
  prefixes = [sampling.observed_prefix(c, t)
              for c, t in zip(cascades, cut_times)]
  truth = np.array([int(np.sum(np.asarray(c.times) <= t + horizon))
                    for c, t in zip(cascades, cut_times)])
  forecasts = model.forecast_sizes(
      prefixes, horizon=horizon, observed_until=list(cut_times),
      num_samples=num_samples, level=level, seed=seed)
  samples = [f.samples for f in forecasts]
  pits = np.sort(randomised_pit(samples, truth, np.random.default_rng(seed)))
  raw = {lv: _coverage(samples, truth, (1 - lv) / 2, (1 + lv) / 2)
         for lv in RAW_LEVELS}
  return ForecastCalibration(
      pits=pits, cut=cut, horizon=horizon, num_cascades=len(cascades),
      num_samples=int(num_samples), raw_coverage=raw,
      pit_ks_pvalue=float(stats.kstest(pits, 'uniform').pvalue))
