#!/bin/bash
# kerasrnn vs its PyTorch peer (benchmarks/torch_peer.py) on this machine's
# CPU, natively and restricted to AVX2, LSTM and GRU, in float32 and in
# bfloat16 mixed precision (kerasrnn's train.precision=mixed_bfloat16
# against torch.autocast("cpu", dtype=torch.bfloat16); natively only, on a
# CPU with AVX512_BF16 or AMX), alternated, ROUNDS rounds (default 3); one
# JSON line per run, each with the CPU's model name and ISA flags. Nothing
# else may run meanwhile. CELLS, ISAS and PRECISIONS choose a subset, e.g.
# CELLS=lstm ISAS=avx2 PRECISIONS=float32. From the project root:
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
# TORCH_PYTHON: the peer's venv's Python (its docstring); REFERENCE=
# ../shared/bench/torch_reference.py runs the workplace reference instead
# (float32 only). At the end it
# prints the file's table (benchmarks/vs_torch_table.py: medians, ranges,
# ratios round by round).
set -u
OUT=${1:?output .jsonl}
ROUNDS=${ROUNDS:-3}
CELLS=${CELLS:-lstm gru}
ISAS=${ISAS:-native avx2}
PRECISIONS=${PRECISIONS:-float32 bfloat16}
TORCH_PYTHON=${TORCH_PYTHON:-$HOME/torch-ref/bin/python}
REFERENCE=${REFERENCE:-benchmarks/torch_peer.py}
TF_AVX2="XLA_FLAGS=--xla_cpu_max_isa=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
TORCH_AVX2="ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
for rep in $(seq "$ROUNDS"); do
  for precision in $PRECISIONS; do
    for isa in $ISAS; do
      # bfloat16 only natively: kept to AVX2, oneDNN has no bfloat16 matmul
      # (TensorFlow 2.21 aborted).
      if [ $precision = bfloat16 ] && [ $isa != native ]; then continue; fi
      if [ $precision = bfloat16 ]; then policy=mixed_bfloat16; else policy=float32; fi
      for cell in $CELLS; do
        if [ $isa = native ]; then tf_env=""; torch_env=""; else
          tf_env=$TF_AVX2; torch_env=$TORCH_AVX2; fi
        env $torch_env "$TORCH_PYTHON" "$REFERENCE" --cell=$cell --precision=$precision | env $torch_env python benchmarks/machine.py 2>/dev/null >> "$OUT"
        env $tf_env python benchmarks/train_throughput.py --cell=$cell --set=train.precision=$policy 2>/dev/null | grep '^{' >> "$OUT"
      done
    done
  done
done
python benchmarks/vs_torch_table.py "$OUT"
