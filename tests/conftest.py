"""Suite-wide set-up: generated data sets are cached in a per-session folder,
so tests never depend on (or write to) the user's ~/.cache."""

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix='cyan_rcbm_test_cache_')
os.environ.setdefault('CYAN_RCBM_CACHE', _CACHE)
