r"""Latency and throughput of an exported model's signatures on this CPU.

Calls the SavedModel in-process (as TF Serving's runtime would, minus its
network stack):

  python benchmarks/serving_latency.py --model=export/ptb_small

Prints one JSON line with p50/p99 latency (ms) of `score` and `next_words`
for one 20-word sentence, `score` throughput in tokens/s at batch 64,
`generate` of up to 20 tokens at batch 1 (sampling stops at <eos>, so
it also reports the mean number of new tokens and the time per new token,
the prompt's reading included), `generate`'s cost per generated token
(the slope of a call's time against its new tokens, sampling up to
1 ... 41 tokens) and the time to its first token (max_tokens 1), the cost of one more token after a prefix of 10,
100 and 1,000 tokens: streamed through `step` (state in, one token) against
re-sent whole through `log_probs` (the stateless way), and the floors no
`score` or `step` in TensorFlow can go below: an empty function with the
signature's inputs and outputs, and that plus the export's output layer
and log-softmax (of one 21-token sentence; of one position).

--intra_op_threads / --inter_op_threads set TensorFlow's thread pools as TF
Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism
do (0: TensorFlow's default, one thread per core each).
"""
import json
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from latency import latencies
from latency import marginal
from latency import summary

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_CALLS = flags.DEFINE_integer("calls", 200, "Timed calls per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed calls first.")
_PREFIXES = flags.DEFINE_list("prefixes", ["10", "100", "1000"],
                              "Prefix lengths for step vs re-sending.")
_INTRA = flags.DEFINE_integer("intra_op_threads", 0,
                              "Threads of one op (0: TensorFlow's default).")
_INTER = flags.DEFINE_integer("inter_op_threads", 0,
                              "Ops run at once (0: TensorFlow's default).")
flags.mark_flag_as_required("model")

_SENTENCE = ("the company said it expects to report a loss for the third "
             "quarter because of lower prices and higher costs")


def main(argv):
  del argv
  from kerasrnn.serving.saved_model import resolve  # pylint: disable=g-import-not-at-top
  from machine import machine  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(_INTRA.value)
  tf.config.threading.set_inter_op_parallelism_threads(_INTER.value)
  path = resolve(_MODEL.value)
  loaded = tf.saved_model.load(path)
  sig = loaded.signatures
  one = tf.constant([_SENTENCE])
  assert len(_SENTENCE.split()) == 20
  calls, warmup = _CALLS.value, _WARMUP.value
  states = sig["step"].structured_input_signature[1]
  cell = ("transformer" if "state_mask" in states else
          "lstm" if "state_0_c" in states else "gru")
  out = {"framework": f"kerasrnn export, TF {tf.__version__}", "model": path,
         "cell": cell, "threads": {"intra_op": _INTRA.value,
                                   "inter_op": _INTER.value}, **machine()}
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
  out["generate_first_token"] = summary(latencies(
      lambda: sig["generate"](prompt=one, max_tokens=tf.constant([1]),
                              temperature=tf.constant([1.0])), calls, warmup))
  out["generate_per_token"] = _marginal_token(sig, one, 2 * calls)
  out["next_token_after_prefix"] = _streaming_vs_resending(sig, calls, warmup)
  out.update(_floors(loaded, one, calls, warmup))
  print(json.dumps(out))


def _marginal_token(sig, one, calls):
  """`generate`'s cost per generated token and its fixed cost (ms): the
  least-squares line of a call's time against its new tokens, over calls
  sampling (temperature 1) up to 1, 2, ..., 41 tokens in turn."""
  tokens, ms = [], []
  for i in range(calls):
    args = dict(prompt=one, max_tokens=tf.constant([1 + i % 41]),
                temperature=tf.constant([1.0]))
    start = time.perf_counter()
    tokens.append(int(sig["generate"](**args)["num_tokens"][0]))
    ms.append(1000 * (time.perf_counter() - start))
  return marginal(tokens, ms)


def _floors(loaded, one, calls, warmup):
  """p50 ms of the least a `score` or a `step` call can cost in TensorFlow
  here: an empty function of the signature's inputs and outputs, and that
  plus the export's own output layer and log-softmax (for `score`, of one
  20-word sentence, 21 positions, and the gather of its targets; for
  `step`, of one position); {} for a model without a plain output layer
  (an adaptive softmax)."""
  weights = {v.name: v for v in loaded.model_variables}
  if "logits/kernel:0" not in weights:
    return {}
  kernel = weights["logits/kernel:0"]
  bias = weights.get("logits/bias:0", tf.zeros([kernel.shape[1]]))
  rng = np.random.default_rng(0)
  hidden = tf.constant(rng.normal(size=(1, 21, kernel.shape[0])), tf.float32)
  targets = tf.constant(rng.integers(0, kernel.shape[1], size=(1, 21)),
                        tf.int32)
  text_spec = [tf.TensorSpec([None], tf.string)]

  @tf.function(input_signature=text_spec)
  def empty(text):
    rows = tf.shape(text)[0]
    return {"log_likelihood": tf.zeros([rows]),
            "num_tokens": tf.zeros([rows], tf.int32),
            "perplexity": tf.ones([rows])}

  @tf.function(input_signature=text_spec)
  def output_layer(text):
    log_probs = tf.nn.log_softmax(tf.matmul(hidden, kernel) + bias)
    log_likelihood = tf.reduce_sum(
        tf.gather(log_probs, targets, batch_dims=2), axis=1)
    return {"log_likelihood": log_likelihood,
            "num_tokens": tf.fill(tf.shape(text), 21),
            "perplexity": tf.exp(-log_likelihood / 21)}

  step = loaded.signatures["step"]
  step_spec = step.structured_input_signature[1]
  request = {k: tf.zeros([1] + [d or 1 for d in v.shape[1:]], v.dtype)
             for k, v in step_spec.items()}

  def step_floor(with_output_layer):
    @tf.function(input_signature=[step_spec])
    def call(inputs):
      rows = tf.shape(inputs["token_ids"])[0]
      logits = tf.zeros([rows, kernel.shape[1]])
      if with_output_layer:
        logits = tf.matmul(hidden[:, 0], kernel) + bias
      out = {"log_likelihood": tf.zeros([rows]),
             "num_tokens": tf.zeros([rows], tf.int32),
             "next_log_probs": tf.nn.log_softmax(logits)}
      out.update({k: v for k, v in inputs.items() if k.startswith("state_")})
      return out
    return lambda: call(request)

  return {"floor_empty_call": summary(latencies(lambda: empty(one), calls,
                                                warmup)),
          "floor_output_layer_1x21": summary(
              latencies(lambda: output_layer(one), calls, warmup)),
          "floor_step_empty_call": summary(
              latencies(step_floor(False), calls, warmup)),
          "floor_step_output_layer_1x1": summary(
              latencies(step_floor(True), calls, warmup))}


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
