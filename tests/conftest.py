import os

import torch

# Deterministic, small thread count: CI has 2 cores and pytest-xdist runs 2 workers.
torch.set_num_threads(1)
os.environ.setdefault("RACL_BENCH_TESTING", "1")
