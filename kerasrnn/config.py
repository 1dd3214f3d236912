"""The one config shared by every command: defaults, validation, persistence.

Config files in `configs/` start from `base_config()` and change values;
users override fields on the command line (`--config.data.batch_size=64`).
The learning rate and clip norm are written in the paper's terms (loss summed
over time steps, averaged over sequences); `kerasrnn.training` is the one
place that turns them into Keras optimizer arguments.
"""
import os

import ml_collections
from ml_collections import config_dict

from kerasrnn.errors import UserError

CELLS = ("lstm", "gru", "transformer")
SOFTMAXES = ("full", "adaptive")
OPTIMIZERS = ("sgd", "adam")
MODES = ("stream", "sentence")
SOURCES = ("ptb", "text", "tfds")
TOKENIZERS = ("whitespace", "punctuation", "sentencepiece")
SENTENCEPIECE_TYPES = ("unigram", "bpe")
DISTRIBUTE = ("none", "mirrored", "multi_worker")
SCHEDULES = ("epoch_decay", "constant", "cosine", "linear", "inverse_sqrt",
             "plateau")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def base_config():
  """Returns the default config; every field is documented here."""
  c = ml_collections.ConfigDict()

  c.data = data = ml_collections.ConfigDict()
  data.source = "ptb"  # ptb | text (your own files) | tfds (any TFDS text set).
  data.dir = os.environ.get("KERASRNN_DATA_DIR", "")  # '' = download PTB.
  # A token store prepared by `kerasrnn-data --prepare=DIR` (then data.dir
  # is not read); '' = one prepared on first use in the cache.
  data.store = ""
  # Split files inside `dir`: names or globs, comma-separated, plain or .gz;
  # '' = the source's names (ptb.{split}.txt for ptb, {split}.txt for text).
  data.train_file = ""
  data.valid_file = ""
  data.test_file = ""
  data.lowercase = False  # Lowercase raw text before tokenising.
  # whitespace | punctuation (splits . , ! ...) | sentencepiece (subword
  # pieces: kerasrnn/data/subword.py, pip install "kerasrnn[subword]").
  data.tokenizer = "whitespace"
  # Keep the most frequent words (0 = all); with sentencepiece, the number
  # of pieces of the model trained on the training split.
  data.max_vocab_size = 0
  data.min_count = 1  # Words seen fewer times in train become <unk>.
  # sentencepiece: a trained .model file ('' = train one on the training
  # split when the store is prepared), and the kind of model to train.
  data.sentencepiece_model = ""
  data.sentencepiece_type = "unigram"  # unigram | bpe
  # Train it on at most this many lines, a sample of the training split
  # (SentencePiece's input_sentence_size; its time and memory grow with it).
  data.sentencepiece_lines = 1_000_000
  data.max_tokens = 0  # Keep only each split's first sentences up to this
  # many tokens (0 = all): quick runs on a slice of a corpus.
  data.tfds_name = ""  # e.g. 'lm1b', or 'ptb_text' (kerasrnn's builder).
  data.tfds_data_dir = ""  # TFDS data_dir ('' = ~/tensorflow_datasets).
  data.tfds_text_key = "text"
  data.tfds_splits = "train,validation,test"
  data.mode = "stream"  # stream (stateful TBPTT) | sentence (padded, bucketed).
  data.batch_size = 20
  data.num_steps = 20  # Stream mode: TBPTT window.
  # Sentence mode: sentences are read in chunks of at most this many tokens,
  # the state carried from one to the next (truncated BPTT within the
  # sentence; the perplexity does not depend on it).
  data.max_length = 100
  data.bucket = True  # Sentence mode: batch by length buckets (False = naive).
  data.bucket_boundaries = ()  # Sentence mode; () = from train lengths.
  data.num_buckets = 32  # Quantile buckets when boundaries are not given.
  data.seed = 0

  c.model = model = ml_collections.ConfigDict()
  model.cell = "lstm"  # lstm | gru | transformer (decoder-only)
  # GRU: True = Keras/cuDNN default (reset gate after the recurrent matmul),
  # False = the published GRU of Cho et al., EMNLP 2014.
  model.gru_reset_after = True
  model.embedding_size = 0  # 0 = hidden_size.
  model.hidden_size = 200  # Units per layer; a Transformer's width.
  model.num_layers = 2  # Recurrent layers, or Transformer blocks.
  model.num_heads = 4  # Transformer: attention heads (divide hidden_size).
  model.ffn_size = 0  # Transformer: feed-forward width (0 = 4 x hidden_size).
  # Dropout on the non-recurrent connections (Zaremba et al. 2014): between
  # recurrent layers, and on the embedding output and before the output layer
  # unless input_dropout / output_dropout say otherwise (None = dropout).
  model.dropout = 0.0
  model.input_dropout = config_dict.placeholder(float)
  model.output_dropout = config_dict.placeholder(float)
  # One dropout mask per sequence, shared by all its time steps (variational
  # dropout, Gal & Ghahramani 2016) instead of a new mask at every step.
  model.locked_dropout = False
  model.word_dropout = 0.0  # Drops whole words' embeddings, per batch.
  # DropConnect on the recurrent kernels, one mask per batch (AWD-LSTM).
  model.weight_drop = 0.0
  model.init_scale = 0.1  # Uniform(-s, s) for every weight; 0 = Keras defaults.
  # Output layer = the embedding matrix. With embedding_size != hidden_size
  # the last recurrent layer gets embedding_size units (as in AWD-LSTM).
  model.tie_embeddings = False
  # full | adaptive: an exact adaptive softmax for large vocabularies
  # (Grave et al. 2017; kerasrnn/models/adaptive.py): the ids below the first
  # cutoff in the head, each next range a cluster of its own, projected
  # adaptive_factor times narrower than the previous one.
  model.softmax = "full"
  model.adaptive_cutoffs = ()  # e.g. (20000, 60000) for 267k words.
  model.adaptive_factor = 4.0
  model.unroll = True  # Unrolled time loop: faster for short stream windows.

  c.train = train = ml_collections.ConfigDict()
  # The run's length: train.steps optimizer steps, or (steps = 0) this many
  # passes over the training split. Neither identifies a run: raise one on a
  # finished workdir to train it on.
  train.epochs = 13
  train.steps = 0
  # Stop this command after this many hours of training (0 = no limit),
  # with the resume state written: the same command continues the run.
  train.max_hours = 0.0
  # Write the resume state every this many steps too (0 = at evaluations
  # only); the last two are kept. Restarted, a run continues from the
  # newest as if it had not stopped.
  train.save_every_steps = 0
  # Validate (and choose the best checkpoint, add a history.csv row) every
  # this many steps; 0 = at each epoch's end.
  train.eval_every_steps = 0
  # Validate on the first this many tokens of the validation split (the same
  # ones each time); 0 = all of it. results.json always uses all of it.
  train.eval_tokens = 0
  # results.json's training perplexity over the first this many training
  # tokens (0 = the whole split: a pass of hours over a large corpus).
  train.results_train_tokens = 0
  # A progress line (step, tokens/s, loss, perplexity, learning rate, time
  # left) every this many steps; 0 = about once a minute.
  train.log_every_steps = 0
  train.optimizer = "sgd"  # sgd | adam
  train.learning_rate = 1.0  # Paper terms: loss summed over time steps.
  # The learning rate by step (kerasrnn/training/schedules.py):
  # epoch_decay: constant for decay_after epochs, then divided by decay every
  #   epoch (Zaremba et al.); constant; cosine or linear: down to 0 at the
  #   run's last step; inverse_sqrt: learning_rate * sqrt(warmup_steps /
  #   step) after the warm-up (fairseq); plateau: divided by decay after each
  #   validation that does not improve on the best (pytorch/examples).
  train.schedule = "epoch_decay"
  train.warmup_steps = 0  # Linear warm-up from 0 over this many steps.
  train.decay_after = 4  # epoch_decay: constant lr for this many epochs, then
  train.decay = 2.0  # divide it by this every epoch (1 = constant).
  train.clip_norm = 5.0  # Global-norm clipping in paper terms (0 = off).
  # > 0: keep an exponential moving average of the weights (the optimizer's
  # use_ema) and validate, checkpoint and export the average, e.g. 0.999.
  train.ema_momentum = 0.0
  # Optimizer steps before the average starts (it follows the weights until
  # then); 0 = from the first step, as Keras.
  train.ema_start = 0
  train.eval_test_every_epoch = True  # Test perplexity at each evaluation.
  # XLA: None = auto, chosen per machine from measurements (on in stream
  # mode on CPUs with AVX-512, off on AVX2-only CPUs and in sentence mode);
  # see kerasrnn/fast_path.py and docs/results.md#training-speed.
  train.jit_compile = config_dict.placeholder(bool)
  # float32 | mixed_bfloat16 (CPUs with AVX512_BF16 or AMX, recent GPUs) |
  # mixed_float16 (GPUs; with loss scaling): Keras's mixed-precision policy
  # for the layers' arithmetic; the weights, the optimizer, the output
  # log-softmax, the loss and the perplexity stay float32 (float64 sums),
  # and checkpoints and exports are float32 either way.
  train.precision = "float32"
  # Training/evaluation steps per call into TensorFlow: Keras's per-batch
  # callbacks and progress bar, which wait for the step to finish, run once
  # per this many steps (1 = every step, measured ~5% slower). Always 1
  # under train.distribute (see kerasrnn/fast_path.py).
  train.steps_per_execution = 32
  train.verbose = 1  # Keras progress bar: 0 silent, 1 bar, 2 one line/epoch.
  # none | mirrored (this machine's GPUs) | multi_worker (TF_CONFIG). See
  # kerasrnn.training.distribute.
  train.distribute = "none"
  train.seed = 0
  return c


def _check(ok, message):
  if not ok:
    raise UserError(message)


def validate(config):
  """Raises UserError naming the first invalid value and its allowed range."""
  d, m, t = config.data, config.model, config.train
  choices = [("data.source", d.source, SOURCES), ("data.mode", d.mode, MODES),
             ("data.tokenizer", d.tokenizer, TOKENIZERS),
             ("data.sentencepiece_type", d.sentencepiece_type,
              SENTENCEPIECE_TYPES),
             ("model.cell", m.cell, CELLS),
             ("model.softmax", m.softmax, SOFTMAXES),
             ("train.optimizer", t.optimizer, OPTIMIZERS),
             ("train.schedule", t.schedule, SCHEDULES),
             ("train.distribute", t.distribute, DISTRIBUTE),
             ("train.precision", t.precision, PRECISIONS)]
  for name, value, allowed in choices:
    _check(value in allowed,
           f"config {name}={value!r} is not one of {', '.join(allowed)}")
  positive = [("data.batch_size", d.batch_size),
              ("data.num_steps", d.num_steps), ("data.num_buckets", d.num_buckets),
              ("model.hidden_size", m.hidden_size),
              ("model.num_layers", m.num_layers), ("train.epochs", t.epochs),
              ("train.learning_rate", t.learning_rate),
              ("train.steps_per_execution", t.steps_per_execution),
              ("data.min_count", d.min_count), ("train.decay", t.decay)]
  for name, value in positive:
    _check(value > 0, f"config {name}={value} must be positive")
  non_negative = [("data.max_vocab_size", d.max_vocab_size),
                  ("data.max_tokens", d.max_tokens),
                  ("data.sentencepiece_lines", d.sentencepiece_lines),
                  ("model.embedding_size", m.embedding_size),
                  ("model.init_scale", m.init_scale),
                  ("train.clip_norm", t.clip_norm),
                  ("train.ema_start", t.ema_start),
                  ("train.decay_after", t.decay_after),
                  ("train.steps", t.steps), ("train.max_hours", t.max_hours),
                  ("train.save_every_steps", t.save_every_steps),
                  ("train.eval_every_steps", t.eval_every_steps),
                  ("train.eval_tokens", t.eval_tokens),
                  ("train.results_train_tokens", t.results_train_tokens),
                  ("train.log_every_steps", t.log_every_steps),
                  ("train.warmup_steps", t.warmup_steps)]
  for name, value in non_negative:
    _check(value >= 0, f"config {name}={value} must be >= 0")
  _check(d.max_length >= 2,
         f"config data.max_length={d.max_length} must be at least 2 tokens")
  rates = [("model.dropout", m.dropout),
           ("model.input_dropout", m.input_dropout),
           ("model.output_dropout", m.output_dropout),
           ("model.word_dropout", m.word_dropout),
           ("model.weight_drop", m.weight_drop),
           ("train.ema_momentum", t.ema_momentum)]
  for name, value in rates:
    _check(value is None or 0 <= value < 1,
           f"config {name}={value} must be in [0, 1)")
  _check(d.max_vocab_size == 0 or d.max_vocab_size >= 3,
         "config data.max_vocab_size must be 0 (all) or at least 3 "
         "(<unk>, <eos> and one word)")
  _check(d.tokenizer != "sentencepiece" or d.sentencepiece_model
         or d.max_vocab_size,
         "config data.tokenizer=sentencepiece trains a model of "
         "data.max_vocab_size pieces: set it (e.g. 8000), or set "
         "data.sentencepiece_model to a trained .model file")
  _check(list(d.bucket_boundaries) == sorted(set(d.bucket_boundaries)),
         "config data.bucket_boundaries must be strictly increasing")
  if m.cell == "transformer":
    _check(m.num_heads > 0 and m.hidden_size % m.num_heads == 0,
           f"config model.num_heads={m.num_heads} must divide "
           f"model.hidden_size={m.hidden_size}")
    _check(m.embedding_size in (0, m.hidden_size),
           "config model.embedding_size must be 0 or model.hidden_size for "
           "model.cell=transformer (the blocks keep the embedding's width)")
    _check(not m.weight_drop,
           "config model.weight_drop is for recurrent kernels; "
           "model.cell=transformer has none: set it to 0")
  if m.softmax == "adaptive":
    _check(m.adaptive_cutoffs,
           "config model.softmax=adaptive needs model.adaptive_cutoffs, the "
           "first id of each tail cluster, e.g. (2000,) or (20000, 60000)")
    _check(m.adaptive_factor >= 1,
           f"config model.adaptive_factor={m.adaptive_factor} must be >= 1")
    _check(not m.tie_embeddings,
           "config model.tie_embeddings ties a full softmax to the embedding; "
           "with model.softmax=adaptive set it to False")
    _check(not t.jit_compile,
           "config train.jit_compile=True cannot compile model.softmax="
           "adaptive (each cluster has as many rows as the batch has targets "
           "in it); leave train.jit_compile unset")
  _check(t.schedule != "inverse_sqrt" or t.warmup_steps > 0,
         "config train.schedule=inverse_sqrt needs train.warmup_steps > 0 "
         "(the rate falls as sqrt(warmup_steps / step) after it)")
  _check(m.ffn_size >= 0, f"config model.ffn_size={m.ffn_size} must be >= 0")
  _check(t.distribute == "none" or not t.jit_compile,
         f"config train.jit_compile=True is not supported with "
         f"train.distribute={t.distribute!r}; leave train.jit_compile unset")
  _check(d.source != "tfds" or d.tfds_name,
         "config data.source=tfds needs data.tfds_name (e.g. lm1b)")
  return config


def to_json(config):
  return config.to_json(indent=2, sort_keys=True)


def with_defaults(values):
  """`values` (a dict) over the defaults: fields added since it was written
  take their default, which is what runs without them computed."""
  merged = base_config().to_dict()

  def merge(into, new):
    for key, value in new.items():
      if isinstance(value, dict) and isinstance(into.get(key), dict):
        merge(into[key], value)
      else:
        into[key] = value

  merge(merged, values)
  return merged


def from_dict(values):
  """A ConfigDict from a dict such as a workdir's config.json."""
  return ml_collections.ConfigDict(with_defaults(values))


def differences(a, b, prefix=""):
  """Lists 'field: a -> b' for every leaf that differs between two dicts."""
  out = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += differences(va, vb, f"{prefix}{key}.")
    elif va != vb and not (isinstance(va, (list, tuple))
                           and isinstance(vb, (list, tuple))
                           and list(va) == list(vb)):
      out.append(f"{prefix}{key}: {va!r} -> {vb!r}")
  return out


def apply_variant(config, variant, variants):
  """Applies a named variant ({'field.path': value}) of a config file.

  Args:
    config: the config to change in place.
    variant: the name after ':' in --config=file.py:variant, or None.
    variants: {name: {dotted field: value}}.

  Returns:
    The config.
  """
  if variant is None:
    return config
  if variant not in variants:
    known = ", ".join(sorted(variants)) or "none"
    raise UserError(f"unknown config variant {variant!r} (known: {known})")
  return override(config, variants[variant])


def override(config, values):
  """Sets dotted fields ({'model.hidden_size': 650}) of `config` in place."""
  config.update_from_flattened_dict(values)
  return config
