r"""Training throughput of kerasrnn's real training step, in tokens/second.

Same flags and one-line JSON as the PyTorch reference
(../shared/bench/torch_reference.py), so the two can be alternated:

  python benchmarks/train_throughput.py --cell=lstm
  python benchmarks/train_throughput.py --cell=gru --baseline

It times `model.fit` of the model, loss (NLL summed over time), exact
perplexity metric, clipping and optimizer that kerasrnn-train builds, after
warm-up. Stream mode (stateful, fixed batch) runs on random ids, like the
reference (or, with --data_dir, on the first batches of PTB's stream, as
kerasrnn-train sees them). Sentence mode runs on the first batches of the real
PTB pipeline (shuffled, bucketed, masked; --data_dir or KERASRNN_DATA_DIR) and
counts real target tokens only:

  python benchmarks/train_throughput.py --mode=sentence --steps=300

--evaluate times kerasrnn's evaluation pass (`evaluation.perplexity`) over the
same batches instead of training. --baseline also times stock Keras
(Embedding -> LSTM/GRU -> Dense, SparseCategoricalCrossentropy, SGD with
global clipping, stream mode) in the same process, for an in-run ratio.
"""
import ast
import json
import os
import resource
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

_CELL = flags.DEFINE_enum("cell", "lstm", ["lstm", "gru", "transformer"],
                          "Cell (transformer: blocks of width hidden_size).")
_HIDDEN = flags.DEFINE_integer("hidden_size", 200, "Units per layer.")
_LAYERS = flags.DEFINE_integer("num_layers", 2, "Recurrent layers.")
_VOCAB = flags.DEFINE_integer("vocab_size", 10_000, "Vocabulary size.")
_BATCH = flags.DEFINE_integer("batch_size", 20, "Sequences per batch.")
_STEPS_T = flags.DEFINE_integer("num_steps", 20, "TBPTT window.")
_STEPS = flags.DEFINE_integer("steps", 100, "Timed training steps.")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Untimed steps first.")
_THREADS = flags.DEFINE_integer("threads", 0, "0: TensorFlow's default.")
_BASELINE = flags.DEFINE_bool("baseline", False, "Also time stock Keras.")
_MODE = flags.DEFINE_enum("mode", "stream", ["stream", "sentence"],
                          "kerasrnn's data layout to time.")
_EVALUATE = flags.DEFINE_bool("evaluate", False,
                              "Time evaluation instead of training.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the PTB files: time real batches "
    "(sentence mode reads KERASRNN_DATA_DIR without it).")
_WITHOUT = flags.DEFINE_multi_enum(
    "without", [], ["fused_loss", "hoisted_projection"],
    "Ablations, to measure what each optimisation gives: fused_loss compiles "
    "a plain Keras loss and metric (the softmax computed twice), "
    "hoisted_projection uses keras.layers.LSTM/GRU as they are.")
_OVERRIDES = flags.DEFINE_multi_string(
    "set", [], "Config overrides field=value, e.g. --set=train.jit_compile=True "
    "or --set=model.adaptive_cutoffs=(2000,6000)")
_IDS = flags.DEFINE_enum(
    "ids", "uniform", ["uniform", "zipf"],
    "Stream mode's random ids: uniform over the vocabulary (as the PyTorch "
    "reference), or ranked by a seeded Zipf law (word r has frequency ~1/r, "
    "as benchmarks/scale.py's corpora and real text): what an adaptive "
    "softmax's clusters see.")


def _config():
  from configs import small  # pylint: disable=g-import-not-at-top
  from kerasrnn import config as config_lib  # pylint: disable=g-import-not-at-top
  config = small.get_config()
  config_lib.override(config, {
      "model.cell": _CELL.value, "model.hidden_size": _HIDDEN.value,
      "model.num_layers": _LAYERS.value, "data.batch_size": _BATCH.value,
      "data.num_steps": _STEPS_T.value, "data.mode": _MODE.value})
  if _DATA_DIR.value:
    config.data.dir = _DATA_DIR.value
  for item in _OVERRIDES.value:
    path, value = item.split("=", 1)
    config_lib.override(config, {path: _value(value)})
  return config_lib.validate(config)


def _value(text):
  """A --set value: a Python literal (1, 0.5, True, (2000, 6000)), true or
  false in any case, or else a string."""
  if text.lower() in ("true", "false"):
    return text.lower() == "true"
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _stock_model(keras):
  rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[_CELL.value]
  model = keras.Sequential(
      [keras.Input(batch_shape=(_BATCH.value, _STEPS_T.value), dtype="int32"),
       keras.layers.Embedding(_VOCAB.value, _HIDDEN.value)] +
      [rnn(_HIDDEN.value, return_sequences=True, stateful=True)
       for _ in range(_LAYERS.value)] +
      [keras.layers.Dense(_VOCAB.value)])
  model.compile(keras.optimizers.SGD(1.0, global_clipnorm=5.0),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def _batches(config, tf):
  """(dataset of warm-up + timed batches, vocabulary size)."""
  from kerasrnn.data import pipelines  # pylint: disable=g-import-not-at-top
  from kerasrnn.data.corpus import load_corpus  # pylint: disable=g-import-not-at-top
  n = _WARMUP.value + _STEPS.value
  if config.data.mode == "sentence" or _DATA_DIR.value:
    corpus = load_corpus(config.data)
    ds = pipelines.make_dataset(config.data, corpus, "train", training=True)
    batches = list(ds.take(n))
    if config.data.mode == "stream":  # Fixed shapes: one tensor per side.
      ds = tf.data.Dataset.from_tensor_slices(
          tuple(tf.stack(side) for side in zip(*batches)))
    else:
      ds = tf.data.Dataset.from_generator(
          lambda: iter(batches), output_signature=ds.element_spec)
    return pipelines.prefetch(ds), len(corpus.vocab)
  shape = [n, _BATCH.value, _STEPS_T.value + 1]
  if _IDS.value == "zipf":  # Ids 3, 4, ... by frequency, as a vocabulary.
    cdf = np.cumsum(1.0 / np.arange(1, _VOCAB.value - 2))
    ranks = np.searchsorted(cdf / cdf[-1],
                            np.random.default_rng(0).random(shape))
    ids = tf.constant(3 + ranks, tf.int32)
  else:
    ids = tf.random.stateless_uniform(shape, seed=[0, 1], minval=1,
                                      maxval=_VOCAB.value, dtype=tf.int32)
  ds = tf.data.Dataset.from_tensor_slices((ids[..., :-1], ids[..., 1:]))
  return pipelines.prefetch(ds), _VOCAB.value


def _time(model, ds, tf):
  """Seconds and real target tokens of the timed batches."""
  from kerasrnn.training import evaluation  # pylint: disable=g-import-not-at-top
  warmup, timed = ds.take(_WARMUP.value), ds.skip(_WARMUP.value)
  tokens = sum(int(tf.math.count_nonzero(y)) for _, y in timed)
  if _EVALUATE.value:
    evaluation.perplexity(model, warmup)
    start = time.perf_counter()
    evaluation.perplexity(model, timed)
  else:
    model.fit(warmup, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(timed, epochs=1, verbose=0, shuffle=False)
  return time.perf_counter() - start, tokens


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if _THREADS.value:
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  from kerasrnn import fast_path  # pylint: disable=g-import-not-at-top
  from kerasrnn.training.train import compile_model  # pylint: disable=g-import-not-at-top
  if _BASELINE.value and (_MODE.value != "stream" or _EVALUATE.value or
                          _CELL.value == "transformer"):
    raise app.UsageError("--baseline times stream-mode LSTM/GRU training only")
  config = _config()
  keras.utils.set_random_seed(0)
  ds, vocab_size = _batches(config, tf)
  model = fast_path.build_model(
      config, vocab_size, stock_layers="hoisted_projection" in _WITHOUT.value)
  if "fused_loss" in _WITHOUT.value:
    from kerasrnn.models import metrics  # pylint: disable=g-import-not-at-top
    from kerasrnn.training.train import make_optimizer  # pylint: disable=g-import-not-at-top
    plain = keras.Model(model.inputs, model.outputs)
    perplexity = metrics.Perplexity()
    plain.compile(optimizer=make_optimizer(config.train),
                  loss=metrics.SequenceLoss(), metrics=[perplexity],
                  jit_compile=fast_path.jit_compile(config))
    plain.perplexity = perplexity  # evaluation.perplexity reads its count.
    model = plain
  else:
    compile_model(model, config)
  runs = {"kerasrnn": model}
  if _BASELINE.value:
    runs["stock_keras"] = _stock_model(keras)
  result = {"framework": f"kerasrnn (keras {keras.__version__}, tf "
                         f"{tf.__version__})", "cell": config.model.cell,
            "hidden_size": config.model.hidden_size,
            "num_layers": config.model.num_layers,
            "batch_size": config.data.batch_size,
            "num_steps": config.data.num_steps, "mode": config.data.mode,
            "vocab_size": vocab_size, "softmax": config.model.softmax,
            "adaptive_cutoffs": list(config.model.adaptive_cutoffs),
            "ids": _IDS.value,
            "parameters": model.count_params(), "evaluate": _EVALUATE.value,
            "jit_compile": fast_path.jit_compile(config),
            "precision": config.train.precision,
            "without": _WITHOUT.value, "overrides": _OVERRIDES.value,
            "threads": _THREADS.value or os.cpu_count(),
            **machine()}
  for name, model in runs.items():
    seconds, tokens = _time(model, ds, tf)
    key = "" if name == "kerasrnn" else f"{name}_"
    result[f"{key}tokens_per_second"] = round(tokens / seconds, 1)
    result[f"{key}ms_per_step"] = round(1000 * seconds / _STEPS.value, 2)
  # Peak resident memory of the whole process (model, batches, TensorFlow).
  result["max_rss_mb"] = round(
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
  if _BASELINE.value:
    result["ratio_to_stock"] = round(result["tokens_per_second"] /
                                     result["stock_keras_tokens_per_second"], 3)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
