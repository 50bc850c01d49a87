"""User-facing errors.

Anything a user can fix (a bad file, a bad config value) raises a subclass of
`InputError`. `cyan_rcbm.main` and the command-line tools print these as one
line and exit with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
  """A problem with the user's input that the user can act on."""


class ConfigError(InputError):
  """A config value that is missing, unknown or out of range."""


class DataError(InputError):
  """A problem in a data file, located by file, line and cascade/sample id.

  Attributes:
    problem: what is wrong, in words.
    path: the file, if the data came from one.
    line: 1-based line number in `path`, if known.
    item_id: the cascade (or sample) id, if known.
  """

  def __init__(self, problem: str, *, path: str | None = None,
               line: int | None = None, item_id: str | None = None):
    self.problem = problem
    self.path = path
    self.line = line
    self.item_id = item_id
    super().__init__(self._format())

  def _format(self) -> str:
    where = ''
    if self.path is not None:
      where = str(self.path)
      if self.line is not None:
        where += f':{self.line}'
    elif self.line is not None:
      where = f'line {self.line}'
    parts = [p for p in (where, f'cascade {self.item_id!r}' if self.item_id
                         is not None else '') if p]
    prefix = ': '.join(parts)
    return f'{prefix}: {self.problem}' if prefix else self.problem
