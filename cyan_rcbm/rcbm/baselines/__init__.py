"""Baselines of the RCBM paper's evaluation (equations.md B7; "Experimental
Results").

* `cae`: convolutional autoencoder with conventional 2-D convolutions over the
  D x T "image", K^2 maps at level 2 (the paper's cAE, ref. [10]).
* `sc`: non-convolutional sparse coding of flattened samples (global atoms,
  ref. [21]), solved with RCBM's own FISTA (`cyan_rcbm.rcbm.fista`).
* `ssm`: linear-Gaussian state-space model fitted by EM with a Kalman
  filter / RTS smoother (ref. [20]).

Each exposes `fit_*`, `log_prob(model, x)` (the per-sample log-likelihood the
perplexity comparison uses; see each module for what it is) and
`num_params`.
"""
