"""Build hook: copy the top-level ``data/`` folder into the wheel as ``workbench/_data``.

Everything else about the package is declared in ``pyproject.toml``. ``data/`` stays at the top of the repository
(where ``scripts/train_digits.py`` writes the bundled checkpoints); ``workbench.data.data_path`` finds the copy in an
installed wheel. Only plain files are copied (no links), so the wheel holds real bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_SOURCE = Path(__file__).resolve().parent / "data"
DATA_TARGET = ("workbench", "_data")


class build_py_with_data(build_py):
    """``build_py`` that also copies ``data/*`` (plain files) into ``<build_lib>/workbench/_data``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib, *DATA_TARGET)
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(DATA_SOURCE.iterdir()):
            if f.is_file() and not f.is_symlink() and not f.name.startswith("."):
                shutil.copyfile(f, target / f.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [str(Path(self.build_lib, *DATA_TARGET, f.name)) for f in sorted(DATA_SOURCE.iterdir())
                 if f.is_file() and not f.is_symlink() and not f.name.startswith(".")]
        return super().get_outputs(include_bytecode) + extra


setup(cmdclass={"build_py": build_py_with_data})
