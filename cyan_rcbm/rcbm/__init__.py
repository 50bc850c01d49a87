"""RCBM (PLoS ONE 2015): recursive convolutional Bayesian model of dynamics.

Modules (public API):
* `ops`: `scale_and_copy` (Eq. 2), `deconvolve` (Eq. 8), `correlate`
  (W-gradient), in forms 'rows' | 'conv' | 'unfold' | 'fft'.
* `fista`: `soft_threshold_nonneg`, `project_frobenius_ball`,
  `nonneg_lasso` (batched FISTA for any linear map; reused by baselines).
* `cbm`: `SolverConfig`, `fit_cbm` (Algorithms 1-2), `outer_step`,
  `solve_h`.
* `rcbm`: `RCBM`, `Level`, `fit_rcbm`, `infer`, `features`, `max_pool`.
* `likelihood`: `log_prob` (Eq. 12), `perplexity`, `anomaly_scores`.
* `select_k`: `activation_strength`, `cumulative_activation`, `knee`, `bic`.
* `io`: `save_model`, `load_model`. `train`: `train_and_evaluate`.
"""
