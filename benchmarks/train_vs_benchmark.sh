#!/bin/bash
# The real command against the benchmark's step, on this machine: the step
# on the first 300 real PTB batches (benchmarks/train_throughput.py), then
# two epochs of `kerasrnn-train --config=configs/small.py`, then the step
# again; one JSON line each (the epochs' tokens/s from the run's
# history.csv), and a last line with each epoch's ratio to the median of
# the two benchmark runs (issue 15: >= 0.95). Nothing else may run
# meanwhile (~6 minutes on an Intel Xeon, ~12 on an AMD EPYC). From the
# project root, in the project's environment:
#   KERASRNN_DATA_DIR=../shared/data/ptb bash benchmarks/train_vs_benchmark.sh docs/speed/train_vs_benchmark_$(hostname).jsonl
# ISA restrictions (XLA_FLAGS, ONEDNN_MAX_CPU_ISA; benchmarks/vs_torch.sh)
# set in the environment apply to all three runs. EPOCHS and STEPS change
# the epochs and the benchmark's timed steps; CONFIG=configs/smoke.py
# checks the script in a minute (its ratios mean nothing: another model).
set -eu
OUT=${1:?output .jsonl}
DATA=${KERASRNN_DATA_DIR:?set KERASRNN_DATA_DIR to the folder with ptb.train.txt}
CONFIG=${CONFIG:-configs/small.py}
EPOCHS=${EPOCHS:-2}
STEPS=${STEPS:-300}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bench() {
  python benchmarks/train_throughput.py --cell=lstm --steps="$STEPS" \
    --data_dir="$DATA" 2>/dev/null | grep '^{' >> "$OUT"
}
bench
kerasrnn-train --config="$CONFIG" --config.train.epochs="$EPOCHS" \
  --config.train.verbose=2 --workdir="$WORK/run" 2> "$WORK/train.log" ||
  { tail -5 "$WORK/train.log"; exit 1; }
bench
python - "$OUT" "$WORK/run" "kerasrnn-train --config=$CONFIG --config.train.epochs=$EPOCHS --config.train.verbose=2" <<'EOF'
import csv, json, statistics, sys
sys.path.insert(0, "benchmarks")
from machine import machine
out, run, what = sys.argv[1:]
with open(f"{run}/history.csv", encoding="utf-8") as f:
  epochs = [{"what": what, "epoch": int(r["epoch"]),
             "tokens_per_second": float(r["tokens_per_second"]),
             "seconds": float(r["seconds"]),
             "val_perplexity": float(r["val_perplexity"]), **machine()}
            for r in csv.DictReader(f)]
with open(out, encoding="utf-8") as f:
  bench = [d["tokens_per_second"] for d in map(json.loads, f)
           if "framework" in d][-2:]  # the two benchmark runs just made
median = statistics.median(bench)
summary = {"benchmark_tokens_per_second": bench,
           "epoch_over_benchmark_median": [
               round(e["tokens_per_second"] / median, 3) for e in epochs],
           **machine()}
with open(out, "a", encoding="utf-8") as f:
  for line in epochs + [summary]:
    f.write(json.dumps(line) + "\n")
print(json.dumps(summary))
EOF
