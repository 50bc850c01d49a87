"""Suite-wide set-up: generated data sets are cached in a per-session folder
(removed at exit), so tests never depend on or write to the user's
~/.cache."""

import atexit
import os
import shutil
import tempfile

if 'CYAN_RCBM_CACHE' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='cyan_rcbm_test_cache_')
  os.environ['CYAN_RCBM_CACHE'] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
