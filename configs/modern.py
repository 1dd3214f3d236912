r"""The modern recipe on PTB: tied, locked/word/weight dropout, averaged weights.

The 2014 recipe (configs/small.py, configs/study.py) with what came after
it (Gal & Ghahramani 2016; Inan et al. 2017; Merity et al. 2018, AWD-LSTM):
tied input/output embeddings (the last layer has the embedding's size),
locked (variational) dropout on the embedding output, between layers and
before the output layer, word (embedding) dropout, DropConnect on the
recurrent kernels, and an exponential moving average of the weights that
is what gets validated, checkpointed and exported. Sized for a 2-core CPU:

  kerasrnn-train --config=configs/modern.py:quick --workdir=runs/modern_quick
  kerasrnn-train --config=configs/modern.py --workdir=runs/modern
  kerasrnn-train --config=configs/modern.py:long --workdir=runs/modern_long

- quick: 2 layers, embedding 200 / hidden 400 / last layer 200 (tied),
  3.45 M parameters, 8 epochs: 50 minutes of training on a 2-core AMD EPYC,
  test perplexity 94.83 (valid 98.57); docs/results.md#a-modern-recipe.
- (default) full: embedding 400, layers of 1,000 and 400 units (tied),
  11.86 M parameters, 15 epochs: 1.79 hours of training on a 2-core Intel
  Xeon (AVX-512; ~400 s per epoch), test perplexity 81.19 (valid 84.47),
  1.19 short of the <= 80 goal: its validation curve said to keep lr 1
  for longer before decaying, which `long` does. On a 2-core AMD EPYC
  (AVX2) an epoch takes ~1,230 s, 5.1 hours for the 15. It resumes where
  it stopped: run the same command again. docs/results.md#a-modern-recipe.
- long: the full model with lr 1 for 13 epochs, then /1.3 per epoch, 21
  epochs: 2.57 hours of training on the 2-core Intel Xeon, test perplexity
  75.40 (valid 78.79), below the <= 80 goal and pytorch/examples' tied
  2 x 650 (75.96); ~7.2 hours on a 2-core AMD EPYC (over 6 hours).

What each technique gives on a short budget (configs/ablation.py): tying
and the weight average most (+7.4 % and +4.5 % test perplexity without
them at 2 x 200, 6 epochs); the three dropouts nothing measurable there.

Runs of a couple of epochs: use `short` (quick's tied model, no dropout, no
weight average, batch 20 x 20), not `quick`. On PTB's first 500,000 tokens,
2 epochs: `quick` 319.8 test perplexity (its average, from the first step
at momentum 0.998, still holds 41 % of the weights after one epoch's 447
steps), without the average 202.4, starting the average after the first
epoch (`train.ema_start=446`) 226.0, without the average and the dropouts
183.5, and `short` 165.2, against 181.4 for configs/small.py;
docs/results.md#short-runs-the-weight-average-and-dropout.
"""
from kerasrnn import config as config_lib


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.mode = "stream"
  c.data.batch_size = 32
  c.data.num_steps = 35
  c.model.cell = "lstm"
  c.model.num_layers = 2
  c.model.embedding_size = 400
  c.model.hidden_size = 1000
  c.model.tie_embeddings = True
  c.model.locked_dropout = True
  c.model.input_dropout = 0.4
  c.model.dropout = 0.25
  c.model.output_dropout = 0.4
  c.model.word_dropout = 0.1
  c.model.weight_drop = 0.4
  c.model.init_scale = 0.05
  c.train.epochs = 15
  c.train.optimizer = "sgd"
  c.train.learning_rate = 1.0  # Paper terms (loss summed over 35 steps).
  c.train.decay_after = 7
  c.train.decay = 1.3
  c.train.clip_norm = 5.0
  c.train.ema_momentum = 0.999
  return config_lib.apply_variant(c, variant, {
      "quick": {"model.embedding_size": 200, "model.hidden_size": 400,
                "model.input_dropout": 0.3, "model.dropout": 0.2,
                "model.output_dropout": 0.3, "model.word_dropout": 0.05,
                "model.weight_drop": 0.2, "train.epochs": 8,
                "train.decay_after": 5, "train.decay": 1.5,
                "train.ema_momentum": 0.998},
      "long": {"train.epochs": 21, "train.decay_after": 13},
      # A run of a couple of epochs (a small corpus, a quick look): the
      # weight average and the dropouts only cost there (see the docstring).
      "short": {"model.embedding_size": 200, "model.hidden_size": 400,
                "model.input_dropout": 0.0, "model.dropout": 0.0,
                "model.output_dropout": 0.0, "model.word_dropout": 0.0,
                "model.weight_drop": 0.0, "model.locked_dropout": False,
                "train.ema_momentum": 0.0, "data.batch_size": 20,
                "data.num_steps": 20, "train.epochs": 2,
                "train.decay_after": 5, "train.decay": 1.5},
  })
