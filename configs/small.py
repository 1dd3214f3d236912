r"""Zaremba et al. (2014) 'small': 2x200 LSTM, no dropout, on PTB, stream mode.

Run:
  kerasrnn-train --config=configs/small.py --workdir=runs/small
Expected on a 2-core CPU: see docs/results.md (13 epochs; test perplexity
<= 115, paper 114.5). Variant `small.py:gru` swaps the cell for a GRU,
`small.py:adaptive` the full softmax for an adaptive one (the 2,000 most
frequent words in the head, the rest in one cluster of 50 dimensions),
`small.py:subword` the words for 8,000 SentencePiece pieces trained on the
training split (pip install "kerasrnn[subword]"; its perplexity per word
is the one to compare).
"""
from kerasrnn import config as config_lib


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.mode = "stream"
  c.data.batch_size = 20
  c.data.num_steps = 20
  c.model.cell = "lstm"
  c.model.hidden_size = 200
  c.model.num_layers = 2
  c.model.dropout = 0.0
  c.model.init_scale = 0.1
  c.train.epochs = 13
  c.train.optimizer = "sgd"
  c.train.learning_rate = 1.0
  c.train.decay_after = 4
  c.train.decay = 2.0
  c.train.clip_norm = 5.0
  return config_lib.apply_variant(c, variant, {
      "gru": {"model.cell": "gru"},
      "adaptive": {"model.softmax": "adaptive",
                   "model.adaptive_cutoffs": (2000,)},
      "subword": {"data.tokenizer": "sentencepiece",
                  "data.max_vocab_size": 8000}})
