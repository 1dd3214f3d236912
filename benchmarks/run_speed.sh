#!/bin/bash
# The speed figures of docs/results.md: PyTorch vs kerasrnn alternated, the
# ablation of kerasrnn's optimisations, evaluation and sentence mode.
# Run from the project root with nothing else on the machine:
#   KERASRNN_DATA_DIR=../shared/data/ptb bash benchmarks/run_speed.sh docs/speed
# TORCH_PYTHON: the Python of the PyTorch reference's venv (its docstring).
set -u
OUT=${1:-docs/speed}
TORCH_PYTHON=${TORCH_PYTHON:-$HOME/torch-ref/bin/python}
REFERENCE=${REFERENCE:-../shared/bench/torch_reference.py}
B=benchmarks/train_throughput.py
PLAIN="--without=fused_loss --without=hoisted_projection"
mkdir -p "$OUT"
# 1. PyTorch vs kerasrnn, alternated, 3 rounds.
for rep in 1 2 3; do
  for cell in lstm gru; do
    "$TORCH_PYTHON" "$REFERENCE" --cell=$cell >> "$OUT/vs_torch.jsonl"
    python $B --cell=$cell --baseline >> "$OUT/vs_torch.jsonl"
  done
done
# 2. What each optimisation gives: stream LSTM training, alternated, 3 rounds.
for rep in 1 2 3; do
  python $B $PLAIN --set=train.jit_compile=false >> "$OUT/ablation.jsonl"
  python $B --without=hoisted_projection --set=train.jit_compile=false >> "$OUT/ablation.jsonl"
  python $B --without=hoisted_projection >> "$OUT/ablation.jsonl"
  python $B >> "$OUT/ablation.jsonl"
done
# 3. Evaluation (stream) and sentence mode (training, evaluation): plain vs now.
for rep in 1 2; do
  python $B --evaluate $PLAIN --set=train.jit_compile=false >> "$OUT/modes.jsonl"
  python $B --evaluate >> "$OUT/modes.jsonl"
  for pass in "" "--evaluate"; do
    python $B --mode=sentence $pass --warmup=100 --steps=300 $PLAIN >> "$OUT/modes.jsonl"
    python $B --mode=sentence $pass --warmup=100 --steps=300 >> "$OUT/modes.jsonl"
  done
done
