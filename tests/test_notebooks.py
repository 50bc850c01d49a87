"""Every notebook in notebooks/ runs top to bottom and is committed stripped.

Each notebook is executed with nbclient in a fresh `python3` kernel (this
interpreter: jupyter_client runs a kernelspec's `python` as sys.executable),
with notebooks/ as the working directory, so a broken notebook fails CI.
"""

import glob
import os

import nbformat
from nbclient import NotebookClient
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIR = os.path.join(_ROOT, 'notebooks')
NOTEBOOKS = sorted(glob.glob(os.path.join(_DIR, '*.ipynb')))
CELL_TIMEOUT_S = 300


def _id(path):
  return os.path.basename(path)


def test_there_are_notebooks():
  assert any(_id(p) == 'rcbm_quickstart.ipynb' for p in NOTEBOOKS), NOTEBOOKS


@pytest.mark.parametrize('path', NOTEBOOKS, ids=_id)
def test_notebook_is_stripped_and_opens_in_colab(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == 'code']
  assert code, f'{path} has no code cells'
  for i, cell in enumerate(code):
    assert cell.outputs == [], f'{path}: code cell {i} has outputs'
    assert cell.execution_count is None, f'{path}: code cell {i} was run'
  assert nb.metadata['kernelspec']['name'] == 'python3'
  # The first code cell installs the package in Colab.
  assert 'google.colab' in code[0].source, (
      f'{path}: the first code cell should detect Colab and install there')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=_id)
def test_notebook_runs_without_errors(path):
  nb = nbformat.read(path, as_version=4)
  client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name='python3',
                          resources={'metadata': {'path': _DIR}})
  client.execute()  # raises CellExecutionError naming the failing cell
  errors = [o for c in nb.cells if c.cell_type == 'code'
            for o in c.outputs if o.output_type == 'error']
  assert not errors, [f'{e.ename}: {e.evalue}' for e in errors]
  images = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs
            if o.output_type == 'display_data' and 'image/png' in o.data]
  assert images, f'{path} drew no figure'
