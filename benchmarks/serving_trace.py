r"""Where a signature's time goes: its ops' times as TF Serving runs it.

Loads an export into a TF1 session (as TF Serving does), calls one
signature with one request (`score`, `next_words`, `generate`: the 20-word
sentence of serving_latency.py; `step`: one token from a zero state) and
prints the session's p50 and, from TensorFlow's full trace of `--traces`
calls, the op types that took the most time (mean µs per call; tracing
adds its own overhead, so read them as shares):

  python benchmarks/serving_trace.py --model=export/ptb_small --signature=step
"""
import collections
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_SIGNATURE = flags.DEFINE_enum(
    "signature", "score", ["score", "next_words", "generate", "step"],
    "The signature to trace.")
_CALLS = flags.DEFINE_integer("calls", 200, "Timed calls (untraced).")
_TRACES = flags.DEFINE_integer("traces", 50, "Traced calls.")
_TOP = flags.DEFINE_integer("top", 15, "Op types to print.")
flags.mark_flag_as_required("model")

_SENTENCE = ("the company said it expects to report a loss for the third "
             "quarter because of lower prices and higher costs")


def _request(signature):
  """The feeds of one request, by input name."""
  name = _SIGNATURE.value
  if name == "step":
    feeds = {"token_ids": np.array([[5]], np.int32),
             "targets": np.array([[7]], np.int32)}
    for key, info in signature.inputs.items():
      if key.startswith("state_"):
        dims = [d.size for d in info.tensor_shape.dim]
        feeds[key] = np.zeros([1] + [max(d, 0) for d in dims[1:]],
                              np.float32 if info.dtype == 1 else np.int32)
    return feeds
  text = np.array([_SENTENCE], object)
  if name == "generate":
    return {"prompt": text, "max_tokens": np.array([1], np.int32),
            "temperature": np.array([1.0], np.float32)}
  return {"text": text}


def main(argv):
  del argv
  from kerasrnn.serving.saved_model import resolve  # pylint: disable=g-import-not-at-top
  from machine import machine  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"],
                                                resolve(_MODEL.value))
    signature = meta.signature_def[_SIGNATURE.value]
    feeds = {signature.inputs[k].name: v
             for k, v in _request(signature).items()}
    fetches = {k: v.name for k, v in signature.outputs.items()}
    for _ in range(20):
      session.run(fetches, feeds)
    ms = []
    for _ in range(_CALLS.value):
      start = time.perf_counter()
      session.run(fetches, feeds)
      ms.append(1000 * (time.perf_counter() - start))
    micros, count = collections.Counter(), collections.Counter()
    options = tf.compat.v1.RunOptions(
        trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    for _ in range(_TRACES.value):
      metadata = tf.compat.v1.RunMetadata()
      session.run(fetches, feeds, options=options, run_metadata=metadata)
      for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
          label = node.timeline_label
          op = (label.split("=")[-1].split("(")[0].strip() if "=" in label
                else node.node_name)
          micros[op] += node.all_end_rel_micros / _TRACES.value
          count[op] += 1 / _TRACES.value
  cpu = machine()
  print(f"{_SIGNATURE.value}: session p50 {np.median(ms):.3f} ms; "
        f"{round(sum(count.values()))} ops per call, "
        f"{sum(micros.values()):.0f} µs of op time (traced); CPU {cpu['cpu']}")
  for op, us in micros.most_common(_TOP.value):
    print(f"{us:9.1f} µs  x{count[op]:<4.0f} {op}")


if __name__ == "__main__":
  app.run(main)
