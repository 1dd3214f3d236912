r"""Zaremba et al. (2014) 'medium': 2x650 LSTM, dropout 0.5, on PTB.

Run (a GPU is advisable; ~40x the compute of 'small'):
  kerasrnn-train --config=configs/medium.py --workdir=runs/medium
Paper: validation 86.2, test 82.7 after 39 epochs. Not run on this project's
2-core CPU (it would take days).
"""
from kerasrnn import config as config_lib


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.batch_size = 20
  c.data.num_steps = 35
  c.model.hidden_size = 650
  c.model.num_layers = 2
  c.model.dropout = 0.5
  c.model.init_scale = 0.05
  c.train.epochs = 39
  c.train.learning_rate = 1.0
  c.train.decay_after = 6
  c.train.decay = 1 / 0.8
  c.train.clip_norm = 5.0
  return config_lib.apply_variant(c, variant, {"gru": {"model.cell": "gru"}})
