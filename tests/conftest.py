"""Test-suite settings: one torch thread per process (the tests use tiny tensors, where threads only add
overhead, and several test processes may share the 2 cores)."""

import os
import sys

import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # for subprocesses started by the tests
sys.path.insert(0, os.path.dirname(__file__))  # tests import their file writers from tests/data_files.py
