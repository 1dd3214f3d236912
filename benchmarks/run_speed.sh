#!/bin/bash
# The ablation figures of docs/results.md ("What each optimisation gave",
# "Evaluation and sentence mode"): kerasrnn's step with its optimisations
# switched off one by one, alternated. (Against PyTorch: benchmarks/vs_torch.sh.)
# Run from the project root with nothing else on the machine:
#   KERASRNN_DATA_DIR=../shared/data/ptb bash benchmarks/run_speed.sh docs/speed
set -u
OUT=${1:-docs/speed}
B=benchmarks/train_throughput.py
PLAIN="--without=fused_loss --without=hoisted_projection"
mkdir -p "$OUT"
# 1. What each optimisation gives: stream LSTM training, alternated, 3 rounds.
for rep in 1 2 3; do
  python $B $PLAIN --set=train.jit_compile=false >> "$OUT/ablation.jsonl"
  python $B --without=hoisted_projection --set=train.jit_compile=false >> "$OUT/ablation.jsonl"
  python $B --without=hoisted_projection >> "$OUT/ablation.jsonl"
  python $B >> "$OUT/ablation.jsonl"
done
# 2. Evaluation (stream) and sentence mode (training, evaluation): plain vs now.
for rep in 1 2; do
  python $B --evaluate $PLAIN --set=train.jit_compile=false >> "$OUT/modes.jsonl"
  python $B --evaluate >> "$OUT/modes.jsonl"
  for pass in "" "--evaluate"; do
    python $B --mode=sentence $pass --warmup=100 --steps=300 $PLAIN >> "$OUT/modes.jsonl"
    python $B --mode=sentence $pass --warmup=100 --steps=300 >> "$OUT/modes.jsonl"
  done
done
