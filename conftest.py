"""Root pytest configuration: quick mode for notebooks, deterministic threads, no progress bars."""

import os

os.environ.setdefault("WORKBENCH_QUICK", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
