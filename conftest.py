"""Root pytest configuration: quick mode for notebooks, deterministic threads, no progress bars."""

import os

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
