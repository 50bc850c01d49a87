"""CYAN-RNN / CYAN-RNN(cov) / RMTPP on cascades (equations.md Part A).

python -m cyan_rcbm.main --config=configs/cyan.py:tiny --workdir=runs/tiny
python -m cyan_rcbm.main --config=configs/cyan.py:cyanrnn_cp_exp \
    --workdir=runs/cp_exp_cov --config.model.variant=cyan_cov
python -m cyan_rcbm.main --config=configs/cyan.py:twitter --workdir=runs/tw
python -m cyan_rcbm.main --config=configs/cyan.py:synthetic_cp_exp \
    --workdir=runs/own --config.data.name='' \
    --config.data.path=my_cascades.jsonl --config.data.format=jsonl

Variants (`:name`): 'tiny' (seconds; tests and notebooks); the paper's four
synthetic sets 'synthetic_cp_exp', 'synthetic_cp_ray', 'synthetic_random_exp',
'synthetic_random_ray' (generated on first use); the authors' shipped sets
'cyanrnn_cp_exp', 'cyanrnn_random_exp'; the real sets 'twitter', 'android',
'christianity', 'topolstm_twitter'. The model variant is independent:
`--config.model.variant=cyan|cyan_cov|rmtpp`.

Real sets use the paper's hyper-parameters (section 4.3: lr 1e-4, encoder
hidden 20, decoder hidden 10, l = 200, coverage size 10, batch 128) with
times in hours. Synthetic sets (32 users, cascades of at most 32 events,
18,000 training cascades) use lr 1e-3 and hidden size 32: the paper's 1e-4
was tuned for 536,240 Weibo sequences and needs ~10x more epochs here, and
l = 32 lets the attention see a cascade's whole history.
"""

import ml_collections

_SYNTHETIC = ('synthetic_cp_exp', 'synthetic_cp_ray', 'synthetic_random_exp',
              'synthetic_random_ray', 'cyanrnn_cp_exp', 'cyanrnn_random_exp')
_REAL = ('twitter', 'android', 'christianity', 'topolstm_twitter')
_SCALE = ('synthetic_weibo',   # 596,088 cascades, 2,964 users, lengths <= 1,000
          'synthetic_large')   # 20,000 cascades, 12,000 users, lengths <= 2,000
VARIANTS = (('tiny', 'real', 'real_paper') + _SYNTHETIC + _SCALE + _REAL +
            tuple(f'{name}_paper' for name in _REAL))


def _data(name: str) -> ml_collections.ConfigDict:
  """The `config.data` block read by `cyan_rcbm.data.registry.load_splits`."""
  data = ml_collections.ConfigDict()
  data.name = name                 # built-in set, or '' to use path/format below.
  data.path = ''                   # a user's cascade file (used when name == '')
  data.format = ''                 # 'jsonl' | 'cyanrnn' | 'forest' | 'topolstm'
  data.graph = ''                  # optional graph file for a user's data
  data.graph_direction = 'forward'  # 'forward' | 'reverse' | 'symmetric'
  data.split = 'random'            # 'random' | 'chronological' | 'given'
  data.split_fractions = (0.8, 0.1, 0.1)  # train, valid, test
  data.split_seed = 0
  data.min_length = 2              # shorter cascades are dropped, with a count
  data.duplicate_users = 'first'   # 'first' (keep first activation) | 'keep' | 'error'
  data.lenient = False             # True: drop malformed chunks with a report
  data.time_scale = 1.0            # times are divided by this (3600: s -> hours)
  data.max_events = 0              # keep only the last L events (0: all); count reported
  data.num_cascades = 0            # synthetic sets: how many (0: the paper's 20,000)
  data.subsample = 0               # >0: keep only the first N train cascades
  return data


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config of variant `arg` (default 'cyanrnn_cp_exp')."""
  arg = arg or 'cyanrnn_cp_exp'
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r} of configs/cyan.py; valid: '
                     f'{", ".join(VARIANTS)}.')
  config = ml_collections.ConfigDict()
  config.task = 'cyan'
  config.seed = 0                  # parameter init and batch order
  config.precision = 'float32'     # matmuls: 'float32' (exact) | 'fast' (TF32 on GPU)
  config.compilation_cache = 'auto'  # JAX's persistent cache: 'auto' | 'workdir' |
                                     #   'off' | a folder (common/compile_cache.py)
  config.log_every = 50            # train steps between progress lines / metric rows
  config.tensorboard = False       # also write TensorBoard scalars (needs tensorboardX)
  config.mesh_devices = 1          # data parallel: devices the batch is split over
                                   #   (1: one device, 0: all, N: the first N)
  config.distributed = False       # multi-host: jax.distributed.initialize() first

  config.data = _data(arg[:-len('_paper')] if arg.endswith('_paper') else arg)

  config.batching = ml_collections.ConfigDict()
  config.batching.batch_size = 128       # cascades per training batch (paper: 128)
  config.batching.eval_batch_size = ml_collections.FieldReference(
      'auto', field_type=object)         # cascades per evaluation batch; 'auto':
                                         #   256 on CPU, 4096 on GPU/TPU
  config.batching.bucket_lengths = ()    # padded lengths (events); () = derived:
  config.batching.min_bucket = 8         #   from this shortest length, in steps of 4
  config.batching.fine_until = 32        #   up to this length (attention work grows as
  config.batching.bucket_growth = 2.0    #   length^2 there), then times this factor
  config.batching.max_buckets = ml_collections.FieldReference(
      'auto', field_type=object)         # derived lengths kept, at most (0: all);
                                         #   'auto': all on CPU, 4 on GPU/TPU
  config.batching.max_batch_events = 0   # >0: rows of a length-N bucket = min(batch, this // N)

  config.model = ml_collections.ConfigDict()
  config.model.variant = 'cyan_cov'      # 'cyan' | 'cyan_cov' | 'rmtpp'
  config.model.embed_dim = 32            # user embedding size
  config.model.encoder_hidden = 32       # GRU encoder state size (H)
  config.model.decoder_hidden = 32       # GRU decoder state size (D)
  config.model.attention_size = 16       # attention MLP size (A)
  config.model.coverage_size = 10        # coverage vector size (C), cyan_cov only
  config.model.coverage_cell = 'gru'     # 'gru' (Tu et al. 2016) | 'tanh' (authors' code)
  config.model.dependence_length = 32    # l: events the attention sees (window)
  config.model.head_hidden = 0           # hidden units of the user MLP g (0: linear)
  config.model.time_context = 'h'        # 'h': b_k reads h_k (equations.md A4) | 's': reads s_k
  config.model.calendar_embed = 2        # size per calendar-field embedding (used when
                                         #   the data has absolute timestamps)
  config.model.mask_active = True        # a user activates once: active users get p = 0
  config.model.log_gap_eps = 1e-4        # input feature log(gap + eps), time units
  config.model.time_w_init = 0.1         # initial slope w, in 1 / (largest training gap)
  config.model.unroll = 1                # lax.scan unroll factor (speed only)
  config.model.window_segments = 3       # 1-3 decoder scans with growing windows for
                                         #   the first l/2 steps (speed only)
  config.model.remat = ml_collections.config_dict.placeholder(bool)
                                         # recompute decoder steps in the backward pass
                                         #   (less memory, more compute); None (auto): on
                                         #   for cyan_cov on CPU (faster there), else off
  # Extensions beyond the paper (cyan_rcbm/cyan/prior.py), on for real data:
  config.model.transition_prior = False  # logits += w log(1 + decayed training
                                         #   successor counts of the last events)
  config.model.prior_top_m = 64          # successors kept per user
  config.model.prior_window = 16         # events back the prior reads
  config.model.prior_decay = 0.8         # weight decay^age of an older event
  config.model.prior_reach = 16          # counts: u within this many events after v
  config.model.popularity_bias = False   # output bias starts at log training share

  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 30           # passes over the training set (upper bound)
  config.train.learning_rate = 1e-3      # Adam step size
  config.train.grad_clip = 5.0           # max global gradient norm
  config.train.patience = 4              # epochs without a better valid criterion before stopping
  config.train.early_stopping = 'nll'    # criterion: 'nll' (Eq. 8 objective) | 'user_nll'
                                         #   (its user term) | 'mrr' (validation MRR)
  config.train.softmax = 'exact'         # user term of the training loss: 'exact' | 'sampled'
                                         #   (K popularity negatives, log-Q corrected;
                                         #   evaluation is always exact)
  config.train.num_negatives = 1024      # K of the sampled softmax
  config.train.checkpoint_every = 0      # also checkpoint every N steps (0: epoch ends only)
  config.train.censor_end = 0.0          # >0: every cascade is observed until this time
                                         #   after its first event, and the loss (and the
                                         #   validation objective) adds -log S(censor_end - t_N)
                                         #   at its last event: the silence after it (the
                                         #   finite-window likelihood). 0: Eq. 8 exactly, as
                                         #   the paper. Synthetic sets: their horizon T = 100.

  config.analysis = ml_collections.ConfigDict()
  config.analysis.alignment_cascades = 3   # test cascades whose alignments are exported
  config.analysis.alignment_max_events = 30  # events drawn in the heat map (Fig. 5)
  config.analysis.network_inference = True   # Fig. 6 when the data has a graph/parents

  base = arg[:-len('_paper')] if arg.endswith('_paper') else arg
  if base in _SCALE:  # real-data model and batching on the generated set
    config.batching.max_batch_events = 8192
    config.batching.fine_until = 0
    config.log_every = 200
  if base in _REAL + ('real',):
    config.data.time_scale = 3600.0      # seconds -> hours
    config.batching.max_batch_events = 8192  # bounds memory of long cascades
    config.batching.fine_until = 0       # long-tailed lengths: fewer shapes
    config.log_every = 20
  if arg.endswith('_paper'):  # section 4.3, tuned for 536,240 Weibo sequences
    config.model.update(embed_dim=20, encoder_hidden=20, decoder_hidden=10,
                        attention_size=10, dependence_length=200)
    config.train.learning_rate = 1e-4
    config.train.num_epochs = 200
    config.train.patience = 10
  elif base in _REAL + _SCALE + ('real',):  # real-data defaults
    config.model.update(embed_dim=64, encoder_hidden=64, decoder_hidden=64,
                        attention_size=32, dependence_length=200,
                        transition_prior=True)
    config.train.learning_rate = 1e-3
    config.train.num_epochs = 30
    config.train.patience = 2
    config.train.early_stopping = 'mrr'  # the user NLL keeps improving by
                                         #   learning popularity while ranking
                                         #   gets worse
    config.batching.batch_size = 64
  if base == 'real':                     # a user's own file: set data.path
    config.data.name = ''
    config.data.format = 'jsonl'
  if base.startswith('cyanrnn_'):
    config.data.split = 'given'          # the authors' train/val/test files
  if base == 'topolstm_twitter':
    config.data.split = 'given'
  if arg == 'tiny':
    config.data.name = 'synthetic_cp_exp'
    config.data.num_cascades = 240
    config.batching.batch_size = 16
    config.batching.eval_batch_size = 32
    config.batching.bucket_lengths = (32,)
    config.model.update(embed_dim=8, encoder_hidden=8, decoder_hidden=8,
                        attention_size=8, coverage_size=4, dependence_length=8,
                        window_segments=1)
    config.train.num_epochs = 2
    config.train.learning_rate = 1e-2
    config.train.patience = 2
    config.log_every = 4
    config.analysis.alignment_cascades = 2
  return config
