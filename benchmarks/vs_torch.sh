#!/bin/bash
# kerasrnn vs the PyTorch reference on this machine's CPU, natively and
# restricted to AVX2, LSTM and GRU, alternated, ROUNDS rounds (default 3);
# one JSON line per run, each with the CPU's model name and ISA flags.
# Nothing else may run meanwhile. CELLS and ISAS choose a subset, e.g.
# CELLS=lstm ISAS=avx2. From the project root:
#   bash benchmarks/vs_torch.sh docs/speed/vs_torch_$(hostname).jsonl
# AVX2 restriction (on an AVX-512 CPU it must measure slower; on an AVX2 CPU
# it changes nothing): XLA_FLAGS=--xla_cpu_max_isa=AVX2 and
# ONEDNN_MAX_CPU_ISA=AVX2 for TensorFlow (XLA and oneDNN kernels),
# ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2 and
# ONEDNN_MAX_CPU_ISA=AVX2 for PyTorch (its oneDNN kernels ignore the first
# two: without the third its LSTM ran ~4 % faster on an AVX-512 Xeon).
# kerasrnn runs with its default fast path (kerasrnn/fast_path.py), which
# sees the XLA cap and turns XLA off: the cap does not reach XLA's matrix
# products (benchmarks/isa_check.py), so an XLA step would not be AVX2-only.
# TORCH_PYTHON: the reference venv's Python (its docstring). At the end it
# prints the file's table (benchmarks/vs_torch_table.py: medians, ranges,
# ratios round by round).
set -u
OUT=${1:?output .jsonl}
ROUNDS=${ROUNDS:-3}
CELLS=${CELLS:-lstm gru}
ISAS=${ISAS:-native avx2}
TORCH_PYTHON=${TORCH_PYTHON:-$HOME/torch-ref/bin/python}
REFERENCE=${REFERENCE:-../shared/bench/torch_reference.py}
TF_AVX2="XLA_FLAGS=--xla_cpu_max_isa=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
TORCH_AVX2="ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
for rep in $(seq "$ROUNDS"); do
  for isa in $ISAS; do
    for cell in $CELLS; do
      if [ $isa = native ]; then tf_env=""; torch_env=""; else
        tf_env=$TF_AVX2; torch_env=$TORCH_AVX2; fi
      env $torch_env "$TORCH_PYTHON" "$REFERENCE" --cell=$cell | env $torch_env python benchmarks/machine.py 2>/dev/null >> "$OUT"
      env $tf_env python benchmarks/train_throughput.py --cell=$cell 2>/dev/null | grep '^{' >> "$OUT"
    done
  done
done
python benchmarks/vs_torch_table.py "$OUT"
