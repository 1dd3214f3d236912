r"""A seconds-long run for tests and for checking an installation.

Run:
  kerasrnn-train --config=configs/smoke.py --workdir=/tmp/smoke
A 1x16 LSTM for 2 epochs on the first 5,000 tokens of each split; expect a
few seconds and a perplexity of several hundred (it only proves the plumbing).
Variant `smoke.py:sentence` uses sentence mode (masked, bucketed batches),
`smoke.py:regularised` every regulariser of configs/modern.py,
`smoke.py:adaptive` an adaptive softmax (for corpora of over 100 words).
"""
from kerasrnn import config as config_lib


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.max_tokens = 5_000
  c.data.batch_size = 10
  c.data.num_steps = 10
  c.data.num_buckets = 4
  c.model.hidden_size = 16
  c.model.num_layers = 1
  c.train.epochs = 2
  c.train.decay_after = 1
  c.train.verbose = 0
  return config_lib.apply_variant(c, variant, {
      "sentence": {"data.mode": "sentence"},
      "gru": {"model.cell": "gru"},
      "regularised": {"model.locked_dropout": True, "model.dropout": 0.2,
                      "model.word_dropout": 0.1, "model.weight_drop": 0.2,
                      "model.tie_embeddings": True, "model.embedding_size": 8,
                      "model.num_layers": 2, "train.ema_momentum": 0.9},
      "adaptive": {"model.softmax": "adaptive",
                   "model.adaptive_cutoffs": (20, 100)},
  })
