"""Child process for the kill/re-attach test: submit the tuning job and poll until killed.

Usage: python _tune_child.py URL OUT_DIR N_TRAIN
"""

import sys
from pathlib import Path

from ftlab.contract import RunContext, TrainJob
from ftlab_bqml.backend import BqmlBackend
from ftlab_bqml.testing import fast_backend_cfg, load_examples, make_prompt, make_run_cfg

url, out_dir, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
backend = BqmlBackend(make_run_cfg(fast_backend_cfg(url)), RunContext(run_dir=out_dir))
print("child: submitting", flush=True)
backend.train(TrainJob(train=load_examples("train", n), eval=(), prompt=make_prompt(), out_dir=out_dir))
print("child: finished (should have been killed first)", flush=True)
