r"""Latency and throughput of an exported model's signatures on this CPU.

Calls the SavedModel in-process (as TF Serving's runtime would, minus its
network stack):

  python benchmarks/serving_latency.py --model=export/ptb_small

Prints one JSON line with p50/p99 latency (ms) of `score` and `next_words`
for one 20-word sentence, `score` throughput in tokens/s at batch 64, and
`generate` of up to 20 tokens at batch 1 (sampling stops at <eos>, so
it also reports the mean number of new tokens and the time per new token).
"""
import json
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_CALLS = flags.DEFINE_integer("calls", 200, "Timed calls per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed calls first.")
flags.mark_flag_as_required("model")

_SENTENCE = ("the company said it expects to report a loss for the third "
             "quarter because of lower prices and higher costs")


def _latencies(fn, calls, warmup):
  for _ in range(warmup):
    fn()
  ms = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    ms.append(1000 * (time.perf_counter() - start))
  return np.array(ms)


def _summary(ms):
  return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
          "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def main(argv):
  del argv
  from kerasrnn.serving.saved_model import resolve  # pylint: disable=g-import-not-at-top
  path = resolve(_MODEL.value)
  sig = tf.saved_model.load(path).signatures
  one = tf.constant([_SENTENCE])
  assert len(_SENTENCE.split()) == 20
  calls, warmup = _CALLS.value, _WARMUP.value
  out = {"model": path}
  out["score_1x20"] = _summary(_latencies(lambda: sig["score"](text=one),
                                          calls, warmup))
  out["next_words_1x20"] = _summary(_latencies(
      lambda: sig["next_words"](text=one), calls, warmup))
  batch = tf.constant([_SENTENCE] * 64)
  ms = _latencies(lambda: sig["score"](text=batch), calls // 4, warmup)
  out["score_batch64_tokens_per_second"] = round(64 * 21 / (np.median(ms) /
                                                            1000), 1)
  generated = []

  def generate():
    result = sig["generate"](prompt=one, max_tokens=tf.constant([20]),
                             temperature=tf.constant([1.0]))
    generated.append(int(result["num_tokens"][0]))

  ms = _latencies(generate, calls // 4, warmup)
  timed = generated[warmup:]  # Sampling stops early at <eos>: per token too.
  out["generate_20_batch1"] = dict(
      _summary(ms), mean_new_tokens=round(float(np.mean(timed)), 1),
      ms_per_new_token=round(float(ms.sum() / max(sum(timed), 1)), 2))
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
