r"""The table of a benchmarks/serving_vs_torch.sh output: medians and ranges.

  python benchmarks/serving_table.py docs/serving/vs_torch.jsonl

Each PyTorch line is paired with the kerasrnn line after it (one round;
a kerasrnn line without one is an error).
Prints one Markdown row per measurement: p50 ms (or tokens/s) median and
range of each side, kerasrnn / PyTorch of the medians and round by round,
then the CPU.
"""
import json
import statistics
import sys

# (label, kerasrnn's value, PyTorch's value) of one round's two lines.
ROWS = [
    ("`score`, one 20-word sentence, p50 ms",
     lambda k: k["score_1x20"]["p50_ms"], lambda t: t["score_1x20"]["p50_ms"]),
    ("`next_words`, one 20-word sentence, p50 ms",
     lambda k: k["next_words_1x20"]["p50_ms"],
     lambda t: t["next_words_1x20"]["p50_ms"]),
    ("one more token from the carried state (`step`), p50 ms",
     lambda k: k["next_token_after_prefix"]["10"]["step_p50_ms"],
     lambda t: t["next_token"]["p50_ms"]),
    ("`generate`, per new token (prompt and sampling included), ms",
     lambda k: k["generate_20_batch1"]["ms_per_new_token"],
     lambda t: t["next_token"]["p50_ms"]),
    ("`score` at batch 64, tokens/s",
     lambda k: k["score_batch64_tokens_per_second"],
     lambda t: t["score_batch64_tokens_per_second"]),
]


def rounds(lines):
  """[(pytorch line, kerasrnn line)] in file order."""
  pairs, torch = [], None
  for line in lines:
    if line["framework"].startswith("torch"):
      torch = line
    elif torch is not None:
      pairs.append((torch, line))
      torch = None
    else:
      raise ValueError(f"a kerasrnn run ({line.get('model')}) without its "
                       "PyTorch run before it")
  return pairs


def _cell(values, digits):
  return (f"{statistics.median(values):,.{digits}f} "
          f"({min(values):,.{digits}f}–{max(values):,.{digits}f})")


def markdown(pairs):
  out = ["| measurement | PyTorch eager | kerasrnn export | kerasrnn / PyTorch "
         "(medians; per round) |", "|---|---|---|---|"]
  for label, ours, theirs in ROWS:
    k = [ours(kr) for _, kr in pairs]
    t = [theirs(tr) for tr, _ in pairs]
    digits = 0 if "tokens/s" in label else 2
    per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(k, t))
    out.append(f"| {label} | {_cell(t, digits)} | {_cell(k, digits)} | "
               f"{statistics.median(k) / statistics.median(t):.2f}; "
               f"{per_round} |")
  first = pairs[0][1]
  out.append(f"\n{len(pairs)} rounds; CPU {first['cpu']} "
             f"({', '.join(first['cpu_isa'])}); {first['framework']}, "
             f"{pairs[0][0]['framework']}.")
  return "\n".join(out)


if __name__ == "__main__":
  with open(sys.argv[1], encoding="utf-8") as f:
    print(markdown(rounds(json.loads(l) for l in f if l.startswith("{"))))
