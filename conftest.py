"""Root pytest configuration: quick mode for notebooks, deterministic threads, no progress bars."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("WORKBENCH_QUICK", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the tests' models are small: one thread is as fast and does not oversubscribe a 2-core CI machine
os.environ.setdefault("OMP_NUM_THREADS", "1")

# notebooks/**/*.py are the jupytext sources of the paired .ipynb: nbval collects the .ipynb, pytest never imports
# the .py as test modules (tests/test_notebooks_sync.py checks that each pair holds the same cells)
collect_ignore_glob = ["notebooks/*.py", "notebooks/**/*.py", "tests/notebooks/*.py"]
_ROOT = Path(__file__).resolve().parent
_NOTEBOOK_DIRS = (_ROOT / "notebooks", _ROOT / "tests" / "notebooks")


class _NotebookSource(pytest.File):
    """A notebook's jupytext source named on the command line: nothing to collect (its .ipynb is the test)."""

    def collect(self):
        return []


def pytest_pycollect_makemodule(module_path, parent):
    """Never import a notebook's ``.py`` source as a test module, even when it is named on the command line."""
    if any(d in Path(module_path).resolve().parents for d in _NOTEBOOK_DIRS):
        return _NotebookSource.from_parent(parent, path=module_path)
    return None


def pytest_configure(config):
    """Collect notebooks with nbval in lax mode (cells must run; outputs are compared only where a cell says
    ``# NBVAL_CHECK_OUTPUT``) in the current environment's kernel, unless the command line chose otherwise."""
    if not config.pluginmanager.hasplugin("nbval"):
        return
    opt = config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        opt.nbval_lax = True
    opt.nbval_current_env = True
    if getattr(opt, "nbval_cell_timeout", None) in (None, 2000):
        opt.nbval_cell_timeout = 900
