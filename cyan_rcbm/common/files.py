"""File permissions of atomically written files.

An atomic write goes to a `tempfile.mkstemp` file, created with mode 0600,
and is then renamed into place. `open_mode_like(fd)` gives it the mode that
`open(path, 'w')` would have given (0666 less the process's umask), so that
converted data and saved models are as readable to a group as any other
file the user writes.
"""

from __future__ import annotations

import os


def umask() -> int:
  """The process's umask (read without changing it where /proc allows)."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('Umask:'):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)  # elsewhere: read by setting, then restore
  os.umask(mask)
  return mask


def open_mode_like(fd: int) -> None:
  """Sets `fd`'s mode to what `open()` gives a new file: 0666 & ~umask."""
  os.fchmod(fd, 0o666 & ~umask())
