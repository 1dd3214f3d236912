r"""What each technique of the modern recipe gives, on a short budget.

The recipe of configs/modern.py:quick at 2 x 200 (tied), trained 6 epochs
in the study's batches (20 x 20) on the first 250,000 tokens of PTB's
training split (a quarter: the model overfits within the budget, which is
what the regularisers are for), validated and tested on the full splits.
`all` has every technique on; each `no_*` run switches one off;
`zaremba_2014` switches all of them off but keeps the same dropout rates
(a new mask at every step, untied, no averaging). One seed per run:
differences under ~1 % are noise.

  kerasrnn-study --config_file=configs/ablation.py --workdir=runs/ablation \
      --report=docs/ablation

or one run: kerasrnn-train --config=configs/ablation.py:no_ema --workdir=...
About 8 minutes per run on a 2-core AMD EPYC. Measured (test perplexity):
all 150.16, zaremba_2014 171.49; untied +7.4 %, no_ema +4.5 %, no_locked /
no_word / no_weight_drop within 1 % (noise at this budget); the table and
what it means: docs/results.md#what-each-technique-gives-ablation.
"""
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError

VARIANTS = {
    "all": {},
    "no_locked": {"model.locked_dropout": False},
    "no_word": {"model.word_dropout": 0.0},
    "no_weight_drop": {"model.weight_drop": 0.0},
    "untied": {"model.tie_embeddings": False},
    "no_ema": {"train.ema_momentum": 0.0},
    "zaremba_2014": {"model.locked_dropout": False, "model.word_dropout": 0.0,
                     "model.weight_drop": 0.0, "model.tie_embeddings": False,
                     "train.ema_momentum": 0.0},
}


def get_config(variant=None):
  if variant is None:
    raise UserError("configs/ablation.py needs a variant: "
                    f"{', '.join(VARIANTS)} (e.g. configs/ablation.py:all)")
  c = config_lib.base_config()
  c.data.max_tokens = 250_000
  c.data.batch_size = 20  # The study's batches: ~625 updates per epoch.
  c.data.num_steps = 20
  c.model.num_layers = 2
  c.model.embedding_size = 200
  c.model.hidden_size = 200
  # configs/modern.py:quick's techniques and rates.
  c.model.tie_embeddings = True
  c.model.locked_dropout = True
  c.model.input_dropout = 0.3
  c.model.dropout = 0.2
  c.model.output_dropout = 0.3
  c.model.word_dropout = 0.05
  c.model.weight_drop = 0.2
  c.model.init_scale = 0.05
  c.train.epochs = 6
  c.train.learning_rate = 1.0
  c.train.decay_after = 4
  c.train.decay = 1.5
  c.train.clip_norm = 5.0
  # An average over the last ~500 updates (most of an epoch).
  c.train.ema_momentum = 0.998
  c.train.eval_test_every_epoch = False
  c.train.verbose = 2
  return config_lib.apply_variant(c, variant, VARIANTS)
