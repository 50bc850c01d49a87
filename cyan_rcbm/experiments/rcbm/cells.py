"""One cell of the runtime / perplexity study: fit one model, score held out.

Each cell fits a model on `x_train` and returns its training seconds, the
held-out log-probabilities under the model's own likelihood (`log_p`), the
held-out squared residuals `sq_test` with the training residual scale
`sigma_train` (for the common-family scores of
`cyan_rcbm.rcbm.likelihood.residual_nll`), the relative reconstruction
error, the parameter count, iterations, convergence and a note.
`CELL_FITS` maps a model name (`plan.MODELS`) to its cell; `quick=True` is the warm-up run on the same
shapes (compilation is not training time).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm.baselines import cae
from cyan_rcbm.rcbm.baselines import sc
from cyan_rcbm.rcbm.baselines import ssm


def _sq_err(x_NxDxT, xhat_NxDxT) -> np.ndarray:
  """`||X_i - Xhat_i||_F^2` per sample (float64)."""
  diff = np.asarray(x_NxDxT, np.float64) - np.asarray(xhat_NxDxT, np.float64)
  return np.sum(np.square(diff), axis=(1, 2))


def _fit_rcbm_cell(settings, x_train, x_test, seed, step, quick=False):
  t0 = time.perf_counter()
  model, fits = models.fit_rcbm(settings, x_train, step=step, seed=seed,
                                max_iters=(1 if quick else
                                           settings.runtime_max_iters),
                                num_restarts=1 if quick else None)
  seconds = time.perf_counter() - t0
  acts = rcbm_lib.infer(model, x_test.astype(np.float32))
  log_p = likelihood.joint_from_activations(model, acts)
  return dict(
      seconds=seconds, log_p=log_p, sq_test=acts[0].sq_err,
      sigma_train=model.levels[0].sigma,
      recon_rel_error=float(np.sum(acts[0].sq_err) / np.sum(x_test ** 2)),
      num_params=models.default_num_params(settings, x_train.shape[1]),
      iterations=[int(f.state.iteration) for f in fits],
      converged=all(bool(f.converged) for f in fits), note='')


def _fit_sc_cell(settings, x_train, x_test, seed, quick=False):
  _, d, t = x_train.shape
  m = sc.matched_num_atoms(models.default_num_params(settings, d), d, t)
  t0 = time.perf_counter()
  fit = sc.fit_sc(x_train.astype(np.float32), m,
                  cfg=sc.SCConfig(lam=settings.lam,
                                  inner_max_iters=settings.inner_max_iters),
                  max_iters=1 if quick else settings.sc_max_iters,
                  tol=settings.tol, seed=seed,
                  infer_max_iters=settings.infer_max_iters,
                  infer_tol=settings.infer_tol)
  seconds = time.perf_counter() - t0
  _, _, sq, l1 = sc.infer_codes(fit.model, x_test.astype(np.float32))
  return dict(
      seconds=seconds,
      log_p=likelihood.cbm_log_joint(sq, l1, fit.model.sigma, fit.model.beta),
      sq_test=sq, sigma_train=fit.model.sigma,
      recon_rel_error=float(np.sum(sq) / np.sum(x_test ** 2)),
      num_params=fit.model.num_params, iterations=[len(fit.history)],
      converged=fit.converged, note=f'M={m} atoms')


def _fit_ssm_cell(settings, x_train, x_test, seed, quick=False):
  d = x_train.shape[1]
  k = ssm.matched_state_dim(models.default_num_params(settings, d), d)
  t0 = time.perf_counter()
  fit = ssm.fit_ssm(x_train.astype(np.float32), k,
                    max_iters=1 if quick else settings.ssm_max_iters,
                    tol=1e-4, seed=seed)
  seconds = time.perf_counter() - t0
  x_test = x_test.astype(np.float32)
  sq_test = _sq_err(x_test, ssm.reconstruct(fit.params, x_test))
  sq_train = _sq_err(x_train, ssm.reconstruct(fit.params,
                                              x_train.astype(np.float32)))
  return dict(seconds=seconds, log_p=ssm.log_prob(fit.params, x_test),
              sq_test=sq_test, sigma_train=float(np.sqrt(np.mean(sq_train))),
              recon_rel_error=float(np.sum(sq_test) / np.sum(x_test ** 2)),
              num_params=fit.num_params,
              iterations=[len(fit.history)], converged=fit.converged,
              note=f'k={k} latent dims')


def _fit_cae_cell(settings, x_train, x_test, seed, quick=False):
  cfg = cae.CAEConfig(
      num_maps=settings.num_filters, num_levels=2,
      filter_length=settings.filter_length, pool=settings.pool,
      lam=settings.lam, max_epochs=1 if quick else settings.cae_max_epochs,
      min_epochs=1 if quick else 3, tol=settings.tol,
      time_budget_s=settings.cae_budget_s, seed=seed)
  fit = cae.fit_cae(x_train.astype(np.float32), cfg)
  x_test = x_test.astype(np.float32)
  xhat = cae.reconstruct(fit.model, x_test)
  note = (f'epochs {fit.epochs}; stopped by the {settings.cae_budget_s:g}s '
          'budget' if fit.budget_exhausted else f'epochs {fit.epochs}')
  sq_test = _sq_err(x_test, xhat)
  return dict(seconds=fit.seconds, log_p=cae.log_prob(fit.model, x_test),
              sq_test=sq_test, sigma_train=fit.model.sigma[0],
              recon_rel_error=float(np.sum(sq_test) / np.sum(x_test ** 2)),
              num_params=fit.model.num_params, iterations=fit.epochs,
              converged=all(fit.converged) and not fit.budget_exhausted,
              note=note)


CELL_FITS: dict[str, Callable[..., dict[str, Any]]] = {
    'rcbm_fs': lambda s, a, b, seed, quick=False: _fit_rcbm_cell(
        s, a, b, seed, 'fixed', quick),
    'rcbm_ls': lambda s, a, b, seed, quick=False: _fit_rcbm_cell(
        s, a, b, seed, 'line_search', quick),
    'rcbm_ls_paper': lambda s, a, b, seed, quick=False: _fit_rcbm_cell(
        s, a, b, seed, 'line_search_paper', quick),
    'cae': _fit_cae_cell, 'sc': _fit_sc_cell, 'ssm': _fit_ssm_cell}
