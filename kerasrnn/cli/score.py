"""kerasrnn-score: score sentences with an exported model (JSON lines).

  echo "the stock market fell" | kerasrnn-score --model=export/ptb_small
  kerasrnn-score --model=export/ptb_small/1 --input=sentences.txt --total_only
  kerasrnn-score --model=export/ptb_small --info

Uses only TensorFlow and the SavedModel's `score` signature (--info: its
`metadata` signature, the model card).
"""
import json
import math
import os
import sys

from absl import flags

from kerasrnn import cli  # First: it quiets TensorFlow's start-up logs.
import tensorflow as tf  # pylint: disable=g-bad-import-order
from kerasrnn.serving import saved_model
from kerasrnn.errors import UserError

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_INPUT = flags.DEFINE_string("input", "-", "Text file, one sentence per line "
                             "('-' = stdin); blank lines are skipped.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sentences per request.")
_TOTAL = flags.DEFINE_bool("total_only", False,
                           "Print only the perplexity over all sentences.")
_INFO = flags.DEFINE_bool("info", False, "Print the export's model card "
                          "(what it is and its request limits) and exit.")
flags.mark_flag_as_required("model")


def _print_card(model):
  if "metadata" not in model.signatures:
    raise UserError(f"{_MODEL.value} has no model card (exported by kerasrnn "
                    "before 0.5); export it again with kerasrnn-export")
  card = model.signatures["metadata"]()["model_card"].numpy().decode("utf-8")
  print(json.dumps(json.loads(card), indent=2))


def main(argv):
  del argv
  if _INPUT.value != "-" and not os.path.exists(_INPUT.value):
    raise UserError(f"--input={_INPUT.value} does not exist (use - for stdin)")
  if os.path.isdir(_INPUT.value):
    raise UserError(f"--input={_INPUT.value} is a directory; pass a text file")
  if _BATCH.value < 1:
    raise UserError(f"--batch_size={_BATCH.value} must be at least 1")
  model = saved_model.load(_MODEL.value)
  if _INFO.value:
    _print_card(model)
    return
  score = model.signatures["score"]
  f = sys.stdin if _INPUT.value == "-" else open(_INPUT.value, encoding="utf-8")
  try:
    # Blank lines are no sentences, as in the corpus reader (so that a split
    # file scores as kerasrnn-evaluate --mode=sentence scores it).
    lines = [line.rstrip("\n") for line in f if line.strip()]
  except UnicodeDecodeError as e:
    raise UserError(f"{_INPUT.value} is not valid UTF-8 ({e.reason})") from None
  total_ll, total_tokens, total_words = 0.0, 0, 0
  per_word = False
  for i in range(0, len(lines), _BATCH.value):
    batch = lines[i:i + _BATCH.value]
    out = score(text=tf.constant(batch))
    # Exports of kerasrnn before 0.4 have no per-word figures.
    per_word = "num_words" in out
    for j, sentence in enumerate(batch):
      ll = float(out["log_likelihood"][j])
      n = int(out["num_tokens"][j])
      words = int(out["num_words"][j]) if per_word else n
      total_ll, total_tokens = total_ll + ll, total_tokens + n
      total_words += words
      if not _TOTAL.value:
        line = {"text": sentence, "log_likelihood": ll, "num_tokens": n,
                "perplexity": float(out["perplexity"][j])}
        if per_word:
          line.update(num_words=words,
                      word_perplexity=float(out["word_perplexity"][j]))
        print(json.dumps(line))
  if _TOTAL.value:
    total = {"sentences": len(lines), "num_tokens": total_tokens,
             "perplexity": math.exp(-total_ll / max(total_tokens, 1))}
    if lines and per_word:
      total.update(num_words=total_words,
                   word_perplexity=math.exp(-total_ll / total_words))
    print(json.dumps(total))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
