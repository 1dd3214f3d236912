r"""Zaremba et al. (2014) 'large': 2x1500 LSTM, dropout 0.65, on PTB.

Run (GPU only in practice):
  kerasrnn-train --config=configs/large.py --workdir=runs/large
Paper: validation 82.2, test 78.4 after 55 epochs. Not run on this project's
2-core CPU.
"""
from kerasrnn import config as config_lib


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.batch_size = 20
  c.data.num_steps = 35
  c.model.hidden_size = 1500
  c.model.num_layers = 2
  c.model.dropout = 0.65
  c.model.init_scale = 0.04
  c.train.epochs = 55
  c.train.learning_rate = 1.0
  c.train.decay_after = 14
  c.train.decay = 1 / 0.87
  c.train.clip_norm = 10.0
  return config_lib.apply_variant(c, variant, {"gru": {"model.cell": "gru"}})
