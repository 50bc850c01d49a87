"""RCBM (PLoS ONE 2015) on multi-dimensional social dynamics.

python -m cyan_rcbm.main --config=configs/rcbm.py:synthetic
--workdir=runs/rcbm_syn python -m cyan_rcbm.main
--config=configs/rcbm.py:twitter_higgs --workdir=runs/rcbm_higgs python -m
cyan_rcbm.main --config=configs/rcbm.py:cascades_android --workdir=runs/rcbm_and
python -m cyan_rcbm.main --config=configs/rcbm.py --workdir=runs/mine \
    --config.data.path=my_dynamics.npz

Variants: 'tiny' (seconds; tests), 'synthetic' (planted filters, equations.md
B3), 'twitter_higgs' (the seven Twitter features per Higgs target user),
'cascades_<name>' for name in android, christianity, topolstm_twitter (the
five B8 features per cascade), and the default (no variant): any .npz with
`x` [n, D, T] given by --config.data.path.
"""

import ml_collections

CASCADE_SETS = ('android', 'christianity', 'topolstm_twitter')
VARIANTS = ('tiny', 'synthetic', 'twitter_higgs') + tuple(
    f'cascades_{name}' for name in CASCADE_SETS)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default config, changed by the variant `arg` (see module doc)."""
  config = ml_collections.ConfigDict()
  config.task = 'rcbm'
  config.seed = 0                # filter initialisation (restart j: seed + j)

  config.data = ml_collections.ConfigDict()
  config.data.source = 'path'    # 'path' | 'planted' | 'higgs' | 'cascades'
  config.data.path = ''          # .npz with x [n, D, T] (source='path')
  config.data.max_samples = 0    # > 0: keep a seeded random subset of n
  config.data.scale = 'feature'  # divide x by: 'none' | 'global' (one std
  #                                over all entries) | 'feature' (per-row std)
  config.data.test_fraction = 0.2  # held-out samples for perplexity_test
  config.data.split_seed = 0     # seed of the train/test split
  # source='planted' (cyan_rcbm.data.planted.make_planted, equations.md B3):
  config.data.planted = ml_collections.ConfigDict()
  config.data.planted.num_samples = 1000
  config.data.planted.num_features = 7    # D
  config.data.planted.length = 60         # T
  config.data.planted.num_filters = 5     # planted K
  config.data.planted.filter_length = 7   # planted Tw
  config.data.planted.noise = 0.05        # std of the Gaussian noise
  config.data.planted.density = 0.02      # P(activation entry != 0)
  config.data.planted.seed = 0
  # source='higgs' (cyan_rcbm.data.higgs.higgs_dynamics):
  config.data.higgs = ml_collections.ConfigDict()
  config.data.higgs.mode = 'target'       # 'target' | 'window'
  config.data.higgs.num_bins = 60         # T
  config.data.higgs.min_events = 10       # see higgs.higgs_samples
  # source='cascades' (cyan_rcbm.data.cascade_dynamics, equations.md B8):
  config.data.cascades = ml_collections.ConfigDict()
  config.data.cascades.name = 'android'   # one of CASCADE_SETS
  config.data.cascades.num_bins = 60      # T
  config.data.cascades.window = 'horizon'  # 'horizon' | 'duration'

  # Not type-safe: num_filters, filter_length and pool take an int or a tuple.
  config.model = ml_collections.ConfigDict(type_safe=False)
  config.model.num_levels = 2       # L
  config.model.num_filters = 10     # K: an int, or one per level (tuple)
  config.model.filter_length = 7    # Tw: an int, or one per level
  config.model.pool = 2             # c between levels: an int, or one per gap
  config.model.step = 'fixed'       # 'fixed' (RCBM-FS) | 'line_search' (LS,
  #                                   warm-started) | 'line_search_paper'
  #                                   (backtracking afresh at every update)
  config.model.penalty = 'fixed'    # lam of Eq. 6: 'fixed' (model.lam) |
  #                                   'mle' (paper: sigma^2/beta each iteration)
  config.model.lam = 0.3            # sigma^2/beta of 'fixed' and the warm-up
  config.model.warmup_iters = 10    # 'mle': iterations at lam before updates
  config.model.w_steps = 1          # accelerated W steps per outer iteration
  #                                   (the paper: 1; more are cheap, see docs/rcbm.md)
  config.model.alpha = 1.0          # step multiplier, (0, 1]
  config.model.init = 'gaussian'    # filter init: 'gaussian' (random) | 'patches'
  config.model.num_restarts = 3     # random initialisations, best kept
  config.model.restart_iters = 0    # > 0: screen each restart for this many
  #                                   outer iterations (0: run each to the end)
  config.model.max_iters = 300      # outer iterations per level, at most
  config.model.tol = 1e-4           # stop at this relative objective decrease
  config.model.min_iters = 3        # outer iterations before testing tol
  config.model.inner_max_iters = 100  # FISTA iterations per h-step, at most
  config.model.inner_tol = 1e-4     # h-step relative objective change to stop
  config.model.batch_size = 'auto'  # samples per mini-batch (0: all at once); 'auto':
                                    #   500 on CPU (fits in cache; timings:
                                    #   docs/performance.md), 262144 on GPU/TPU
                                    #   (common/backend_defaults.py)
  config.model.form = 'auto'        # operator form: auto|blockt|block|conv|rows|unfold|fft

  config.eval = ml_collections.ConfigDict()
  config.eval.knee_eps = 0.05       # F(m) saturation threshold (Eq. 11)
  config.eval.bic_num_filters = ()  # K values of the BIC curve per level
  #                                   (one extra training each; () = none)
  config.eval.bic_max_iters = 100   # outer iterations of each BIC training
  config.eval.infer_max_iters = 500  # h-step iterations for new data
  config.eval.infer_tol = 1e-5      # h-step tolerance for new data
  config.eval.infer_batch_size = ml_collections.FieldReference(
      'auto', field_type=object)    # samples per inference batch; 'auto': 2000
                                    #   on CPU, 262144 on GPU/TPU

  config.precision = 'float32'      # matmuls: 'float32' (exact) | 'fast' (TF32 on GPU)
  config.compilation_cache = 'auto'  # JAX's persistent cache: 'auto' | 'workdir' |
                                     #   'off' | a folder (common/compile_cache.py)
  config.log_every = 1              # progress line every N outer iterations
  config.tensorboard = False       # also write TensorBoard scalars (needs tensorboardX)
  config.checkpoint_every = 10      # checkpoint every N outer iterations
  config.plots = True               # write PNG figures
  config.mesh_devices = 1           # data parallel: devices the samples are split
  #                                   over (1: one device, 0: all, N: first N)
  config.distributed = False        # multi-host: jax.distributed.initialize() first

  if arg is None or arg == '':
    return config
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}; expected one of {VARIANTS}')
  if arg == 'tiny':
    config.data.source = 'planted'
    config.data.scale = 'none'
    config.data.planted.num_samples = 120
    config.data.planted.length = 30
    config.data.planted.num_filters = 3
    config.model.num_filters = 3
    config.model.filter_length = (5, 3)
    config.model.num_restarts = 2
    config.model.restart_iters = 3
    config.model.max_iters = 12
    config.model.inner_max_iters = 30
    config.model.batch_size = 64
    config.eval.bic_num_filters = (3,)   # same K as the model: no recompile
    config.eval.bic_max_iters = 5
    config.eval.infer_max_iters = 100
    config.eval.infer_batch_size = 32
    config.checkpoint_every = 4
  elif arg == 'synthetic':
    config.data.source = 'planted'
    config.data.scale = 'none'
    config.eval.bic_num_filters = (2, 3, 4, 5, 6, 7, 8, 10)
  elif arg == 'twitter_higgs':
    config.data.source = 'higgs'
  else:
    config.data.source = 'cascades'
    config.data.cascades.name = arg[len('cascades_'):]
  return config
