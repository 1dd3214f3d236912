r"""Per-step training perplexity: kerasrnn's layers vs the stock Keras layers.

Trains the same model (same seed, same initial weights, same PTB batches) for
the first `--steps` steps of epoch 1 twice, once with kerasrnn's recurrent
layers (input projection hoisted) and once with `keras.layers.LSTM`/`GRU`,
and prints the running training perplexity of both at a few steps. Used to
check that a training curve's shape comes from the config, not from the
layer implementation (float rounding makes chaotic runs part ways later).

  python benchmarks/trajectory.py --data_dir=../shared/data/ptb \
      --config=configs/study.py:gru --steps=2324

Prints one JSON line.
"""
import json

from absl import app
from absl import flags
import keras
from ml_collections import config_flags

from kerasrnn import fast_path
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
from kerasrnn.training.train import compile_model

_CONFIG = config_flags.DEFINE_config_file("config", "configs/study.py:gru",
                                          "Config file.", lock_config=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with the PTB files.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps from the start.")
_LAYERS = flags.DEFINE_list("layers", ["kerasrnn", "stock"],
                            "Which implementations to run.")
_REPORT_AT = (1, 2, 3, 4, 5, 10, 20, 30, 50, 100, 200, 500, 1000, 2000)


def _running_perplexity(config, corpus, steps, stock_layers):
  keras.utils.set_random_seed(config.train.seed)
  ds = pipelines.make_dataset(config.data, corpus, "train", training=True)
  model = compile_model(fast_path.build_model(
      config, len(corpus.vocab), stock_layers=stock_layers), config)
  values = []
  record = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda batch, logs: values.append(
          float(logs["perplexity"])))
  model.fit(ds.take(steps), epochs=1, verbose=0, callbacks=[record])
  return values


def main(argv):
  del argv
  config = _CONFIG.value
  if _DATA_DIR.value:
    with config.unlocked():
      config.data.dir = _DATA_DIR.value
  corpus = load_corpus(config.data)
  runs = {name: _running_perplexity(config, corpus, _STEPS.value,
                                    stock_layers=(name == "stock"))
          for name in _LAYERS.value}
  steps = [s for s in _REPORT_AT if s < _STEPS.value] + [_STEPS.value]
  result = {"cell": config.model.cell, "optimizer": config.train.optimizer,
            "learning_rate": config.train.learning_rate,
            "steps": _STEPS.value, "running_train_perplexity": {
                name: {s: round(v[s - 1], 3) for s in steps}
                for name, v in runs.items()},
            "max_running_perplexity": {
                name: [round(max(v), 1), v.index(max(v)) + 1]
                for name, v in runs.items()}}
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
