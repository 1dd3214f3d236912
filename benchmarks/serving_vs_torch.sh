#!/bin/bash
# kerasrnn's export against PyTorch eager for the same shapes (the serving
# peer, benchmarks/serving_latency_torch.py), alternated ROUNDS times
# (default 3); one JSON line per run, each with the CPU's model name; at the
# end the table (benchmarks/serving_table.py). Nothing else may run
# meanwhile. From the project root, with an LSTM export:
#   bash benchmarks/serving_vs_torch.sh docs/serving/vs_torch.jsonl export/ptb_small
# CELL/HIDDEN/LAYERS: the export's model (default lstm, 200, 2); the vocabulary
# is read from the export. THREADS (default 2): PyTorch's threads, and
# TensorFlow's intra- and inter-op threads (TF Serving's
# --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism). TORCH_PYTHON: the reference venv's Python
# (../shared/bench/torch_reference.py's docstring says how to make it).
set -eu
OUT=${1:?output .jsonl}
MODEL=${2:?an export: a version directory or a model base}
ROUNDS=${ROUNDS:-3}
TORCH_PYTHON=${TORCH_PYTHON:-$HOME/torch-ref/bin/python}
VERSION=$(python -c "import sys; from kerasrnn.serving.saved_model import resolve; print(resolve(sys.argv[1]))" "$MODEL" 2>/dev/null)
for rep in $(seq "$ROUNDS"); do
  "$TORCH_PYTHON" benchmarks/serving_latency_torch.py --vocab="$VERSION/assets/vocab.txt" \
      --cell="${CELL:-lstm}" --hidden_size="${HIDDEN:-200}" --num_layers="${LAYERS:-2}" \
      --threads="${THREADS:-2}" \
      | python benchmarks/machine.py 2>/dev/null >> "$OUT"
  python benchmarks/serving_latency.py --model="$VERSION" --prefixes=10 \
      --intra_op_threads="${THREADS:-2}" --inter_op_threads="${THREADS:-2}" 2>/dev/null | grep '^{' >> "$OUT"
done
python benchmarks/serving_table.py "$OUT"
