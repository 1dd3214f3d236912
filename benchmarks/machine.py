"""This machine as benchmarks record it: CPU model name, vector ISA, any ISA
restriction in force (`machine()`, which every benchmark adds to its JSON
lines). As a script it adds the same to each JSON line read on stdin, for
benchmarks run in PyTorch's environment, which records none:

  ~/torch-ref/bin/python ../shared/bench/torch_reference.py | python benchmarks/machine.py
"""
import json
import os
import sys

ISA_VARIABLES = ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                 "MKL_ENABLE_INSTRUCTIONS")


def machine():
  """The CPU's model name and vector ISA, and any ISA restriction in force."""
  from kerasrnn import fast_path  # pylint: disable=g-import-not-at-top
  name, cpu_flags = fast_path.cpu()
  isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                    "amx_bf16") if f in cpu_flags]
  return {"cpu": name, "cpu_isa": isa,
          "isa_env": {v: os.environ[v] for v in ISA_VARIABLES
                      if v in os.environ}}


if __name__ == "__main__":
  for line in sys.stdin:
    if line.startswith("{"):
      print(json.dumps({**json.loads(line), **machine()}))
