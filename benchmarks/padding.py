r"""Padding overhead and training-pass time: naive padding vs bucketing.

On PTB train in sentence mode, for each batch size: the padding overhead
(padded positions / real tokens) and the wall time of one full training pass
(forward + backward + update) over the split, with random batches padded to
their longest sentence ('naive') against length buckets ('bucketed').

  python benchmarks/padding.py --data_dir=../shared/data/ptb

Prints one JSON line per (batch size, layout).
"""
import json
import time

from absl import app
from absl import flags
import keras

from kerasrnn import config as config_lib
from kerasrnn import fast_path
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
from kerasrnn.data.summary import pipeline_stats
from kerasrnn.training.train import compile_model

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with the PTB files.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["20", "64"], "Batch sizes.")
_HIDDEN = flags.DEFINE_integer("hidden_size", 200, "LSTM units.")
_LAYERS = flags.DEFINE_integer("num_layers", 2, "LSTM layers.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Batches before timing.")


def main(argv):
  del argv
  config = config_lib.base_config()
  config.data.dir = _DATA_DIR.value or config.data.dir
  config.data.mode = "sentence"
  config.model.hidden_size = _HIDDEN.value
  config.model.num_layers = _LAYERS.value
  config.train.clip_norm = 5.0
  corpus = load_corpus(config.data)
  for batch_size in map(int, _BATCH_SIZES.value):
    for bucket in (False, True):
      config.data.batch_size, config.data.bucket = batch_size, bucket
      ds = pipelines.make_dataset(config.data, corpus, "train", training=True)
      keras.utils.set_random_seed(0)
      model = compile_model(fast_path.build_model(config, len(corpus.vocab)),
                            config)
      # Warm-up traces the train step; Keras relaxes the time dimension
      # after a few shapes, so the timed pass does not retrace.
      model.fit(ds.take(_WARMUP.value), epochs=1, verbose=0)
      start = time.perf_counter()
      model.fit(ds, epochs=1, verbose=0)
      seconds = time.perf_counter() - start
      stats = pipeline_stats(ds)
      print(json.dumps({
          "batch_size": batch_size,
          "layout": "bucketed" if bucket else "naive",
          "padding_overhead": stats["padding_overhead"],
          "batches": stats["batches"], "seconds": round(seconds, 1),
          "tokens_per_second": round(stats["target_tokens"] / seconds, 1)}),
            flush=True)


if __name__ == "__main__":
  app.run(main)
