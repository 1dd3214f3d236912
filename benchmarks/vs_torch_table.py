r"""The table of a benchmarks/vs_torch.sh output: medians, ranges, ratios.

  python benchmarks/vs_torch_table.py docs/speed/vs_torch_$(hostname).jsonl

Reads the runs in file order: each PyTorch line is paired with the kerasrnn
line that follows it (same cell and ISA: one round). Prints one Markdown
row per cell and ISA: tokens/s median (range) of each side, the ratio of
the medians, and the ratio round by round, then the CPU the runs were on.
"""
import json
import statistics
import sys


def rounds(runs):
  """{(cell, isa, precision): [(pytorch, kerasrnn) tokens/s per round]}, in
  file order (precision: float32 or bfloat16, kerasrnn's mixed_bfloat16)."""
  table = {}
  torch = None
  for run in runs:
    restricted = run.get("isa_env")
    isa = (restricted.get("ONEDNN_MAX_CPU_ISA", "restricted") if restricted
           else "native")
    precision = run.get("precision", "float32").replace("mixed_", "")
    key = (run["cell"], isa, precision)
    if run["framework"].startswith("torch"):
      torch = (key, run["tokens_per_second"])
    elif torch and torch[0] == key:
      table.setdefault(key, []).append((torch[1], run["tokens_per_second"]))
      torch = None
    else:
      raise ValueError(f"a kerasrnn run ({key}) without its PyTorch run before it")
  return table


def _cell(values):
  return (f"{statistics.median(values):,.0f} "
          f"({min(values):,.0f}–{max(values):,.0f})")


def markdown(table):
  rows = ["| cell | ISA | PyTorch | kerasrnn | kerasrnn / PyTorch (medians) "
          "| round by round |", "|---|---|---|---|---|---|"]
  for (cell, isa, precision), pairs in table.items():
    if precision != "float32":
      isa = f"{isa}, {precision}"
    torch, ours = zip(*pairs)
    ratio = statistics.median(ours) / statistics.median(torch)
    each = ", ".join(f"{b / a:.2f}" for a, b in pairs)
    rows.append(f"| {cell.upper()} | {isa} "
                f"| {_cell(torch)} | {_cell(ours)} | **{ratio:.2f}** "
                f"| {each} |")
  return "\n".join(rows)


def main(paths):
  if not paths:
    sys.exit(__doc__.strip().splitlines()[2].strip())
  runs = []
  try:
    for path in paths:
      with open(path, encoding="utf-8") as f:
        runs += [json.loads(line) for line in f if line.strip()]
    table = rounds(runs)
  except (OSError, ValueError, KeyError) as e:
    sys.exit(f"error: {e} (reading {' '.join(paths)}); give the .jsonl "
             "files benchmarks/vs_torch.sh wrote")
  print(markdown(table))
  print(f"\nCPU: {', '.join(sorted({run.get('cpu', '?') for run in runs}))}")


if __name__ == "__main__":
  main(sys.argv[1:])
