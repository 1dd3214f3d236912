r"""Latency and throughput of an exported model's signatures on this CPU.

Calls the SavedModel in-process (as TF Serving's runtime would, minus its
network stack):

  python benchmarks/serving_latency.py --model=export/ptb_small

Prints one JSON line with p50/p99 latency (ms) of `score` and `next_words`
for one 20-word sentence, `score` throughput in tokens/s at batch 64,
`generate` of up to 20 tokens at batch 1 (sampling stops at <eos>, so
it also reports the mean number of new tokens and the time per new token),
and the cost of one more token after a prefix of 10, 100 and 1,000 tokens:
streamed through `step` (state in, one token) against re-sent whole through
`log_probs` (the stateless way).
"""
import json

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from latency import latencies
from latency import summary

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_CALLS = flags.DEFINE_integer("calls", 200, "Timed calls per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed calls first.")
_PREFIXES = flags.DEFINE_list("prefixes", ["10", "100", "1000"],
                              "Prefix lengths for step vs re-sending.")
flags.mark_flag_as_required("model")

_SENTENCE = ("the company said it expects to report a loss for the third "
             "quarter because of lower prices and higher costs")


def main(argv):
  del argv
  from kerasrnn.serving.saved_model import resolve  # pylint: disable=g-import-not-at-top
  from machine import machine  # pylint: disable=g-import-not-at-top
  path = resolve(_MODEL.value)
  sig = tf.saved_model.load(path).signatures
  one = tf.constant([_SENTENCE])
  assert len(_SENTENCE.split()) == 20
  calls, warmup = _CALLS.value, _WARMUP.value
  states = sig["step"].structured_input_signature[1]
  cell = ("transformer" if "state_mask" in states else
          "lstm" if "state_0_c" in states else "gru")
  out = {"framework": f"kerasrnn export, TF {tf.__version__}", "model": path,
         "cell": cell, **machine()}
  out["score_1x20"] = summary(latencies(lambda: sig["score"](text=one),
                                          calls, warmup))
  out["next_words_1x20"] = summary(latencies(
      lambda: sig["next_words"](text=one), calls, warmup))
  batch = tf.constant([_SENTENCE] * 64)
  ms = latencies(lambda: sig["score"](text=batch), calls // 4, warmup)
  out["score_batch64_tokens_per_second"] = round(64 * 21 / (np.median(ms) /
                                                            1000), 1)
  generated = []

  def generate():
    result = sig["generate"](prompt=one, max_tokens=tf.constant([20]),
                             temperature=tf.constant([1.0]))
    generated.append(int(result["num_tokens"][0]))

  ms = latencies(generate, calls // 4, warmup)
  timed = generated[warmup:]  # Sampling stops early at <eos>: per token too.
  out["generate_20_batch1"] = dict(
      summary(ms), mean_new_tokens=round(float(np.mean(timed)), 1),
      ms_per_new_token=round(float(ms.sum() / max(sum(timed), 1)), 2))
  out["next_token_after_prefix"] = _streaming_vs_resending(sig, calls, warmup)
  print(json.dumps(out))


def _streaming_vs_resending(sig, calls, warmup):
  """p50 ms of one more token: `step` from the state vs `log_probs` of all."""
  step = sig["step"]
  # The start of a stream: zeros (no positions in a Transformer's cache).
  state = {k: tf.zeros([1] + [d or 0 for d in v.shape[1:]], v.dtype)
           for k, v in step.structured_input_signature[1].items()
           if k.startswith("state_")}
  rng = np.random.default_rng(0)
  result = {}
  for n in map(int, _PREFIXES.value):
    prefix = rng.integers(3, 1000, size=(1, n)).astype(np.int32)
    # The state after the prefix (one call), then one token from it.
    after = step(token_ids=tf.constant(prefix),
                 targets=tf.zeros_like(prefix), **state)
    carried = {k: after[k] for k in state}
    one = tf.constant([[5]], tf.int32)
    stream = latencies(lambda: step(token_ids=one, targets=tf.zeros_like(one),
                                     **carried), calls, warmup)
    whole = tf.constant(np.concatenate([prefix, [[5]]], axis=1), tf.int32)
    resend = latencies(lambda: sig["log_probs"](token_ids=whole),
                        max(calls // 10, 5), 2)
    result[str(n)] = {"step_p50_ms": summary(stream)["p50_ms"],
                      "resend_p50_ms": summary(resend)["p50_ms"]}
  return result


if __name__ == "__main__":
  app.run(main)
