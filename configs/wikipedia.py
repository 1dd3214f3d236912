r"""A large corpus on 2 CPU cores: 64 M words of English Wikipedia, by the step.

The corpus: 8 gzip shards of raw paragraphs + valid/test (see the README of
the folder `data.dir` points at; 77.0 M training tokens with the
punctuation tokeniser, 294,934 words seen at least 3 times). One epoch is
192,609 steps of 20 x 20 tokens: hours on 2 cores, so this run is
counted, validated, saved and scheduled in steps, and each command stops
after `train.max_hours` with its state saved; the same command continues.

Prepare the token store once (about a minute on 2 cores), then train:
  kerasrnn-data --config=configs/wikipedia.py --prepare=stores/wikipedia
  kerasrnn-train --config=configs/wikipedia.py \
      --config.data.store=stores/wikipedia --workdir=runs/wikipedia
  # ... stopped after 2 hours; later, the same command continues:
  kerasrnn-train --config=configs/wikipedia.py \
      --config.data.store=stores/wikipedia --workdir=runs/wikipedia
  kerasrnn-report --runs='runs/wikipedia*' --out=runs/report

`data.dir` defaults to the project's copy beside the checkout
(../shared/data/wikipedia); point it at yours with --config.data.dir.

Expected on a 2-core AMD EPYC (Zen 4, AVX-512), TensorFlow 2.21: 2.0
minutes per 1,000 steps with the adaptive softmax (3,265 tokens/s;
docs/results.md, "Training by the step"), so 6.5 hours an epoch and an
evaluation every 5,000 steps about every 10 minutes. Variant `wikipedia.py:full` keeps the full softmax over
the 294,934 words (the same vocabulary; many times slower per step);
`wikipedia.py:subword` reads 32,000 SentencePiece pieces trained on the
training split instead of words (a full softmax over them; pip install
"kerasrnn[subword]"; compare its perplexity per word).
"""
import os

from kerasrnn import config as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(variant=None):
  c = config_lib.base_config()
  c.data.source = "text"
  c.data.dir = os.path.join(_HERE, "..", "..", "shared", "data", "wikipedia")
  c.data.train_file = "train-*.txt.gz"
  c.data.valid_file = "valid.txt.gz"
  c.data.test_file = "test.txt.gz"
  c.data.tokenizer = "punctuation"
  c.data.min_count = 3
  c.data.mode = "stream"
  c.data.batch_size = 20
  c.data.num_steps = 20
  c.model.cell = "lstm"
  c.model.hidden_size = 200
  c.model.num_layers = 2
  c.model.init_scale = 0.1
  # The 20,000 most frequent words (90 % of the tokens) in the head, the
  # next 40,000 in one cluster, the other 234,934 in another.
  c.model.softmax = "adaptive"
  c.model.adaptive_cutoffs = (20_000, 60_000)
  c.train.epochs = 1
  c.train.optimizer = "sgd"
  c.train.learning_rate = 1.0
  c.train.clip_norm = 5.0
  # Constant until a validation does not improve, then halved each time.
  c.train.schedule = "plateau"
  c.train.decay = 2.0
  c.train.eval_every_steps = 5_000
  c.train.eval_tokens = 200_000  # A quarter of the validation split.
  c.train.eval_test_every_epoch = False
  # results.json's training figure on 1 M tokens (a pass over all 77 M
  # would take hours).
  c.train.results_train_tokens = 1_000_000
  c.train.save_every_steps = 1_000
  c.train.max_hours = 2.0
  return config_lib.apply_variant(c, variant, {
      "full": {"model.softmax": "full", "model.adaptive_cutoffs": ()},
      # The pieces learnt from 300,000 of the 1.2 M paragraphs (about
      # 16 M words; all of them would take the trainer ~6 GB).
      "subword": {"data.tokenizer": "sentencepiece",
                  "data.max_vocab_size": 32_000, "data.min_count": 1,
                  "data.sentencepiece_lines": 300_000,
                  "model.softmax": "full", "model.adaptive_cutoffs": ()}})
