r"""The table of a benchmarks/serving_vs_torch.sh output: medians and ranges.

  python benchmarks/serving_table.py docs/serving/vs_torch.jsonl

Each PyTorch line is paired with the kerasrnn line after it (one round;
a kerasrnn line without one is an error).
Prints one Markdown row per measurement: p50 ms (or tokens/s) median and
range of each side, kerasrnn / PyTorch of the medians and round by round,
then the CPU and TensorFlow's floors. Runs from before a measurement
existed skip its row: `generate` per generated token (the slope of a
call's time against its tokens, both sides) and to its first token replace the
earlier runs' per new token with the prompt's reading included, which was
set against PyTorch's one step.
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
    ("`generate`, per generated token (the slope over 1–41 tokens), ms",
     lambda k: k["generate_per_token"]["ms_per_token"],
     lambda t: t["generate_per_token"]["ms_per_token"]),
    ("`generate`, time to the first token (`max_tokens` 1), p50 ms",
     lambda k: k["generate_first_token"]["p50_ms"],
     lambda t: t["generate_first_token"]["p50_ms"]),
    # Earlier runs measured no slope.
    ("`generate`, per new token (prompt and sampling included), ms",
     lambda k: _legacy(k)["generate_20_batch1"]["ms_per_new_token"],
     lambda t: t["next_token"]["p50_ms"]),
    ("`score` at batch 64, tokens/s",
     lambda k: k["score_batch64_tokens_per_second"],
     lambda t: t["score_batch64_tokens_per_second"]),
]


def _legacy(line):
  if "generate_per_token" in line:
    raise KeyError("generate_per_token")  # The slope's rows replace it.
  return line


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


def _p50(pairs, key, side=1):
  """Median and range of `key`'s p50 over the rounds (side 0: PyTorch's
  lines, 1: kerasrnn's)."""
  return _cell([pair[side][key]["p50_ms"] for pair in pairs], 2)


def markdown(pairs):
  out = ["| measurement | PyTorch eager | kerasrnn export | kerasrnn / PyTorch "
         "(medians; per round) |", "|---|---|---|---|"]
  for label, ours, theirs in ROWS:
    try:
      k = [ours(kr) for _, kr in pairs]
      t = [theirs(tr) for tr, _ in pairs]
    except KeyError:  # Not measured in these runs.
      continue
    digits = 0 if "tokens/s" in label else 2
    per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(k, t))
    out.append(f"| {label} | {_cell(t, digits)} | {_cell(k, digits)} | "
               f"{statistics.median(k) / statistics.median(t):.2f}; "
               f"{per_round} |")
  first = pairs[0][1]
  threads = ""
  if "threads" in first:
    threads = (f" (intra-/inter-op threads {first['threads']['intra_op']}/"
               f"{first['threads']['inter_op']}; PyTorch's "
               f"{pairs[0][0]['threads']})")
  out.append(f"\n{len(pairs)} rounds; CPU {first['cpu']} "
             f"({', '.join(first['cpu_isa'])}); {first['framework']}{threads}, "
             f"{pairs[0][0]['framework']}.")
  if "floor_empty_call" in first:
    out.append(
        "TensorFlow's floors for `score` (p50 ms, median and range): an empty "
        f"function of its inputs and outputs {_p50(pairs, 'floor_empty_call')}"
        "; that plus the output layer and log-softmax of 21 positions "
        f"{_p50(pairs, 'floor_output_layer_1x21')}; PyTorch's recurrent layers "
        f"alone over the 21 positions {_p50(pairs, 'rnn_only_1x21', side=0)}.")
  if "floor_step_empty_call" in first:
    out.append(
        "TensorFlow's floors for `step`: an empty function of its inputs and "
        f"outputs {_p50(pairs, 'floor_step_empty_call')}; that plus the output "
        "layer and log-softmax of one position "
        f"{_p50(pairs, 'floor_step_output_layer_1x1')}.")
  return "\n".join(out)


if __name__ == "__main__":
  with open(sys.argv[1], encoding="utf-8") as f:
    print(markdown(rounds(json.loads(l) for l in f if l.startswith("{"))))
