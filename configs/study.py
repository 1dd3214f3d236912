r"""The classic study: LSTM vs GRU, with and without dropout, SGD vs Adam.

Six variants (the four runs of the study, a control and a Transformer), all 2x200 on PTB in stream mode (batch 20, 20 steps, init 0.1,
clip 5, 13 epochs), i.e. Zaremba et al.'s 'small' size, so each run takes
about an hour on a 2-core CPU (the paper's medium/large sizes would take
days here; that is what was scaled down):

  kerasrnn-train --config=configs/study.py:lstm --workdir=runs/study/lstm
  kerasrnn-train --config=configs/study.py:lstm_dropout --workdir=runs/study/lstm_dropout
  kerasrnn-train --config=configs/study.py:gru --workdir=runs/study/gru
  kerasrnn-train --config=configs/study.py:gru_dropout_adam \
      --workdir=runs/study/gru_dropout_adam

- lstm: SGD lr 1, halved every epoch after epoch 4 (= configs/small.py).
- lstm_dropout: dropout 0.5, SGD lr 1, divided by 1.25 every epoch after 6
  (dropout needs the longer constant phase, as in the paper's medium model).
- gru: SGD lr 1, halved after epoch 4.
- gru_dropout_adam: dropout 0.5, Adam lr 0.001, divided by 1.25 after 6.
- gru_lr05: a control added after the study's `gru` run blew up in its
  first steps at SGD lr 1 (running perplexity 161,890 at step 4, with the
  stock keras.layers.GRU too; benchmarks/trajectory.py): the same GRU at
  SGD lr 0.5, halved after epoch 4.
- transformer: an extra, a 2-block decoder-only Transformer
  of about the same size, in the same pipeline (kerasrnn.models.transformer).
"""
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError

VARIANTS = {
    "lstm": {},
    "lstm_dropout": {"model.dropout": 0.5, "train.decay_after": 6,
                     "train.decay": 1.25},
    "gru": {"model.cell": "gru"},
    "gru_dropout_adam": {"model.cell": "gru", "model.dropout": 0.5,
                         "train.optimizer": "adam",
                         "train.learning_rate": 0.001,
                         "train.decay_after": 6, "train.decay": 1.25},
    "gru_lr05": {"model.cell": "gru", "train.learning_rate": 0.5},
    # An extra: a decoder-only Transformer of about the same
    # size (2 blocks of width 200, 4 heads, feed-forward 800: 4.98 M
    # parameters vs the LSTM's 4.65 M), dropout 0.2, Adam. No state crosses
    # windows, so each 64-token window is one sequence (context 0-63 words).
    # A training token costs it 1.17x the LSTM's (AMD EPYC, docs/theory.md
    # section 5), so 10 epochs take ~0.9x the time of the LSTM runs' 13.
    "transformer": {"model.cell": "transformer", "model.num_heads": 4,
                    "train.epochs": 10,
                    "model.dropout": 0.2, "model.init_scale": 0.0,
                    "data.num_steps": 64, "train.optimizer": "adam",
                    "train.learning_rate": 0.001, "train.decay_after": 6,
                    "train.decay": 1.25},
}


def get_config(variant=None):
  if variant is None:
    raise UserError("configs/study.py needs a variant: "
                    f"{', '.join(VARIANTS)} (e.g. configs/study.py:lstm)")
  c = config_lib.base_config()
  c.data.batch_size = 20
  c.data.num_steps = 20
  c.model.hidden_size = 200
  c.model.num_layers = 2
  c.model.init_scale = 0.1
  c.train.epochs = 13
  c.train.learning_rate = 1.0
  c.train.decay_after = 4
  c.train.decay = 2.0
  c.train.clip_norm = 5.0
  c.train.verbose = 2  # one line per epoch: the runs are long, logs stay short
  return config_lib.apply_variant(c, variant, VARIANTS)
