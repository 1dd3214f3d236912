"""Adds this machine (CPU model name, ISA flags, ISA restrictions in force)
to each JSON line read on stdin, for benchmarks run in PyTorch's
environment, which records none:

  ~/torch-ref/bin/python ../shared/bench/torch_reference.py | python benchmarks/machine.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import machine  # pylint: disable=g-import-not-at-top

for line in sys.stdin:
  if line.startswith("{"):
    print(json.dumps({**json.loads(line), **machine()}))
