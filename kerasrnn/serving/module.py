"""The exported graph: raw text in, scores / next words / samples out.

`LanguageModelModule` wraps a trained, stateless copy of the model with the
vocabulary and kerasrnn's text preprocessing inside the graph. Its
`tf.function`s, each with an explicit batch-major input signature, become the
SavedModel's serving signatures (documented in export/README.md).

`score`, `log_probs` and `next_words` run the whole model over the text at
once (an LSTM's small batches through TensorFlow's fused LSTM op).
`generate` and `step` go one token at a time through a decoder that
carries a state (`kerasrnn.serving.decoders`): `RecurrentDecoder` (an
LSTM/GRU: the cells' states) or `TransformerDecoder` (a key/value cache of
the positions read so far, so a new token costs attention over the cache
rather than re-reading the prefix). `step` passes that state through its
inputs and outputs; `generate` and `sample` draw each token with
`kerasrnn.serving.sampling`.
"""
import collections
import json

import tensorflow as tf

from kerasrnn.data import subword
from kerasrnn.data import text
from kerasrnn.models import rnn_layers
from kerasrnn.serving import sampling
from kerasrnn.serving.decoders import RecurrentDecoder
from kerasrnn.serving.decoders import TransformerDecoder


class Limits(collections.namedtuple(
    "Limits", ["max_batch", "max_request_tokens", "max_generate_tokens"])):
  """What one request may ask of an export (`kerasrnn-export` flags of the
  same names): rows per request; tokens a request reads (its texts'
  tokens, or its ids); `generate`'s max_tokens. A request over one is an
  InvalidArgument naming it."""


DEFAULT_LIMITS = Limits(max_batch=256, max_request_tokens=100_000,
                        max_generate_tokens=200)

# `score` reads texts in chunks of positions, carrying the state (a
# Transformer: in windows of its context), so that its memory does not grow
# with a text's length: chunks whose logits take at most SCORE_BYTES, within
# SCORE_CHUNK positions (a request of `rows` texts of V words: rows x chunk
# x V x 4 bytes of logits, at most max(SCORE_BYTES, max_batch x 16 x V x 4)).
SCORE_BYTES = 256 << 20
SCORE_CHUNK = (16, 256)

# `step` returns the whole next-word distribution (besides its top_k) for
# vocabularies of up to this many words (kerasrnn-export --step_log_probs).
STEP_LOG_PROBS_WORDS = 65_536


def step_log_probs_for(vocab_size, asked=None):
  """Whether `step` returns the whole distribution: `asked`, or (None) for
  vocabularies of up to STEP_LOG_PROBS_WORDS words."""
  return vocab_size <= STEP_LOG_PROBS_WORDS if asked is None else asked

# `log_probs` returns tokens x vocabulary floats: at most this many bytes.
LOG_PROBS_BYTES = 1 << 30

# An LSTM's requests of up to this many rows read through TensorFlow's
# fused LSTM op, larger ones through the Keras cells: where the two crossed
# on a 2-core CPU (docs/results.md#serving-latency); kerasrnn-export
# --fused_max_batch sets it for other machines.
FUSED_MAX_BATCH = 4


class LanguageModelModule(tf.Module):
  """Serving functions of a trained language model.

  Args:
    model: a stateless kerasrnn model (sentence mode) with trained weights
      (an LSTM's are copied into the fused op's layout here: train first).
    vocab_file: path of vocab.txt; it becomes a SavedModel asset.
    vocab_words: the same words, in id order (for id -> word).
    lowercase, tokenizer: the run's text preprocessing (config.data).
    sentencepiece_model: with tokenizer 'sentencepiece', the model file
      (the workdir's); it becomes a SavedModel asset, and the graph cuts
      text into its pieces and `generate` joins them back into text.
    top_k: how many of the most likely next words `next_words` and `step`
      return (ids, words, log-probabilities).
    limits: a `Limits`: what one request may ask.
    step_log_probs: whether `step` also returns the whole next-word
      distribution (`next_log_probs`, [batch, vocab]); None: for
      vocabularies of up to STEP_LOG_PROBS_WORDS words.
    fused_max_batch: an LSTM's batches of up to this many rows run its
      fused op (`RecurrentDecoder`).
    context: a Transformer's context in training (config.data.max_length):
      `score` and `next_words` read a text in windows of this many
      positions, each from its own start, as sentence-mode evaluation reads
      it; None = the whole text at once. Recurrent models carry their
      state over any length and ignore it.
    card: the model card (a JSON-able dict), which the `metadata`
      signature returns.
  """

  def __init__(self, model, vocab_file, vocab_words, lowercase=False,
               tokenizer="whitespace", top_k=10, limits=DEFAULT_LIMITS,
               fused_max_batch=FUSED_MAX_BATCH, context=None,
               sentencepiece_model=None,
               card=None, step_log_probs=None):
    super().__init__(name="kerasrnn")
    self.model = model
    self._output_layer = model.get_layer("logits")
    self.context = None if rnn_layers(model) else context
    # Listed explicitly (as keras.export.ExportArchive does) so that every
    # weight is a named variable of the SavedModel's checkpoint, which the
    # TF1-style loader of TF Serving and saved_model_cli restores.
    self.model_variables = [v.value for v in model.weights]
    self.lowercase = lowercase
    self.tokenizer = tokenizer
    self.pieces = None
    if tokenizer == "sentencepiece":
      with open(sentencepiece_model, "rb") as f:
        serialized = f.read()
      self.sentencepiece_model = tf.saved_model.Asset(sentencepiece_model)
      self.pieces = subword.tokenizer(serialized)
      # Each id's id in the SentencePiece model, to join pieces into text.
      self.model_ids = tf.constant(subword.model_ids(serialized, vocab_words),
                                   tf.int32)
    self.top_k = min(top_k, len(vocab_words) - 1)
    self.step_log_probs = step_log_probs_for(len(vocab_words), step_log_probs)
    self.limits = Limits(*limits)
    self.card = json.dumps(card or {}, sort_keys=True)
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            # A cut asset then fails to load instead of mapping words
            # past the cut to <unk>.
            vocab_size=len(vocab_words)),
        default_value=text.UNK_ID)
    self.words = tf.constant(vocab_words)
    self.vocab_size = len(vocab_words)
    self.decoder = (RecurrentDecoder(model, fused_max_batch)
                    if rnn_layers(model) else TransformerDecoder(model))
    # One dict of named inputs: flat named tensors for TF Serving, and one
    # argument for callers such as keras.layers.TFSMLayer.
    specs = {name: tf.TensorSpec([None, None], tf.int32, name)
             for name in ("token_ids", "targets")}
    specs.update(self.decoder.specs)
    self.step = tf.function(self._stream_step, input_signature=[specs])

  @property
  def state_specs(self):
    """{state input name: TensorSpec} of the `step` signature."""
    return dict(self.decoder.specs)

  def initial_states(self, batch):
    """The state at the start of a stream: zeros, no cached positions
    (shaped as the `step` signature's inputs, for loops that grow them)."""
    return {name: tf.compat.v1.placeholder_with_default(
        tf.zeros([batch] + [d or 0 for d in spec.shape[1:]], spec.dtype),
        spec.shape) for name, spec in self.decoder.specs.items()}

  def _ids(self, strings):
    """<string>[batch] -> ragged <int32>[batch, (words)]; unknown -> <unk>."""
    tokens = text.tokenize(strings, self.lowercase, self.tokenizer,
                           self.pieces)
    ids = tf.cast(self.table.lookup(tokens), tf.int32)
    # '<pad>' typed by a client is a word like any other unknown one.
    return tf.where(ids == text.PAD_ID, text.UNK_ID, ids)

  def _check_ids(self, ids, name):
    """InvalidArgument unless every id of input `name` is in the vocabulary."""
    message = f"{name} must be ids in [0, {self.vocab_size}) (0 = padding)"
    return [tf.debugging.assert_non_negative(ids, message=message),
            tf.debugging.assert_less(ids, self.vocab_size, message=message)]

  def _check_request(self, rows=None, tokens=None):
    """InvalidArgument if a request has more rows, or reads more tokens,
    than this export's limits allow."""
    limits = self.limits
    checks = []
    if rows is not None:
      checks.append(tf.debugging.assert_less_equal(
          tf.cast(rows, tf.int64), tf.constant(limits.max_batch, tf.int64),
          message=f"a request has at most max_batch={limits.max_batch} rows "
                  "in this export (kerasrnn-export --max_batch)"))
    if tokens is not None:
      checks.append(tf.debugging.assert_less_equal(
          tf.cast(tokens, tf.int64),
          tf.constant(limits.max_request_tokens, tf.int64),
          message=f"a request reads at most max_request_tokens="
                  f"{limits.max_request_tokens} tokens in this export "
                  "(kerasrnn-export --max_request_tokens)"))
    return checks

  def _checked(self, checks, value):
    """`value` once `checks` passed."""
    with tf.control_dependencies(checks):
      return tf.nest.map_structure(tf.identity, value)

  def _checked_ids(self, strings, name="text"):
    """`_ids` of a request of UTF-8 texts within the limits (rows checked
    before the texts are tokenised; tokens, each text's and its <eos>,
    after)."""
    strings = self._checked(self._check_request(tf.size(strings)), strings)
    # Transcoding drops what is not UTF-8: a text it shortens is not.
    valid = tf.equal(tf.strings.length(tf.strings.unicode_transcode(
        strings, "UTF-8", "UTF-8", errors="ignore")), tf.strings.length(strings))
    strings = self._checked([tf.debugging.assert_equal(
        tf.reduce_all(valid), True,
        message=f"{name} must be UTF-8 text")], strings)
    ids = self._ids(strings)
    return self._checked(
        self._check_request(tokens=tf.size(ids.values, tf.int64)
                            + ids.nrows()), ids)

  def _check_batch(self, first, others):
    """InvalidArgument unless every input has the batch size of `first`."""
    name, value = first
    return [tf.debugging.assert_equal(
        tf.shape(other)[0], tf.shape(value)[0],
        message=f"{other_name} must have one row per row of {name}")
            for other_name, other in others]

  def _with_start(self, ids):
    eos = tf.fill([ids.nrows(), 1], text.EOS_ID)
    return tf.concat([eos, ids], axis=1)

  def _logits(self, hidden):
    """The output layer on top-layer outputs; float32 whatever the model
    computes in (a bfloat16 export's softmax is taken in float32)."""
    return tf.cast(self._output_layer(hidden), tf.float32)

  def _log_softmax(self, scores):
    """The distribution of the output layer's `scores`: log_softmax of
    logits; an adaptive softmax's are log-probabilities already."""
    if self._output_layer.log_probabilities:
      return scores
    return tf.nn.log_softmax(scores)

  def _target_log_likelihood(self, scores, targets):
    """<float32>[batch] log-likelihood of the non-zero `targets` under the
    output layer's `scores` ([batch, time, vocab]), summed per row."""
    picked = tf.gather(self._log_softmax(scores), targets, batch_dims=2)
    return tf.reduce_sum(tf.where(targets != text.PAD_ID, picked, 0.0), 1)

  def _model_logits(self, token_ids):
    # Keras's recurrent layers fail on an empty batch, whose answer is
    # empty anyway.
    shape = tf.shape(token_ids)
    return tf.cond(
        tf.size(token_ids) > 0,
        lambda: tf.cast(self.model(token_ids, training=False), tf.float32),
        lambda: tf.zeros([shape[0], shape[1], self.vocab_size]))

  def _log_probs(self, token_ids):
    # The model's own distribution, exactly as evaluation scores it.
    return self._log_softmax(self._model_logits(token_ids))

  def _without_padding(self, logits):
    # Padding is never a word to predict or sample.
    return logits + tf.one_hot(text.PAD_ID, self.vocab_size, on_value=-1e9)

  def _right_padded(self, strings):
    """Each text read from <eos>: (<int32>[batch, time] inputs, the targets
    (its words then <eos>), <int32>[batch] tokens per row), 0 after a row's
    last token."""
    ids = self._checked_ids(strings).to_tensor(text.PAD_ID)
    lengths = tf.reduce_sum(tf.cast(ids != text.PAD_ID, tf.int32), axis=1) + 1
    eos = tf.fill([tf.shape(ids)[0], 1], text.EOS_ID)
    inputs = tf.concat([eos, ids], axis=1)
    targets = tf.concat([ids, tf.zeros_like(eos)], axis=1)
    last = tf.range(tf.shape(inputs)[1])[None, :] == lengths[:, None] - 1
    return inputs, tf.where(last, text.EOS_ID, targets), lengths

  def _fused_or(self, batch, fused, other):
    """fused() where the decoder reads a batch of `batch` rows with its fused
    op (`RecurrentDecoder`), else other()."""
    if self.decoder.fused is None:
      return other()
    return tf.cond(batch <= self.decoder.fused_max_batch, fused, other)

  def _hidden_states(self, inputs):
    """<float32>[batch, time, width] top-layer outputs of right-padded
    inputs (the output layer's inputs)."""
    shape = tf.shape(inputs)
    width = self._output_layer.input.shape[-1]
    # Keras's recurrent layers fail on an empty batch, whose answer is
    # empty anyway.
    model = lambda: tf.cond(
        tf.size(inputs) > 0, lambda: self._windowed(inputs),
        lambda: tf.zeros([shape[0], shape[1], width]))
    fused = lambda: self.decoder.hidden_states(
        inputs, self.initial_states(shape[0]))
    return self._fused_or(shape[0], fused, model)

  def _windowed(self, inputs):
    """The model's hidden states; a Transformer's in windows of
    `self.context` positions (rows cut into windows, then put back)."""
    if self.context is None:
      return tf.cast(self.model.hidden_states(inputs), tf.float32)
    shape = tf.shape(inputs)
    windows = (shape[1] + self.context - 1) // self.context
    cut = tf.reshape(
        tf.pad(inputs, [[0, 0], [0, windows * self.context - shape[1]]]),
        [shape[0] * windows, self.context])
    hidden = tf.cast(self.model.hidden_states(cut), tf.float32)
    return tf.reshape(hidden, [shape[0], windows * self.context,
                               hidden.shape[-1]])[:, :shape[1]]

  def _chunk(self, rows):
    """`score`'s chunk of positions for `rows` texts: a Transformer's
    context, else within SCORE_CHUNK, its logits within SCORE_BYTES."""
    if self.context is not None:
      return tf.constant(self.context)
    fit = SCORE_BYTES // (4 * self.vocab_size) // tf.maximum(rows, 1)
    return tf.clip_by_value(fit, *SCORE_CHUNK)

  def _log_likelihood(self, inputs, targets):
    """<float32>[batch] log-likelihood of the non-zero targets of
    right-padded inputs read at once (each text from its start)."""
    return self._target_log_likelihood(
        self._logits(self._hidden_states(inputs)), targets)

  def _log_likelihood_in_chunks(self, inputs, targets):
    """`_log_likelihood` in chunks of `_chunk` positions, each read by
    `_read` from the state the one before left (a Transformer's windows
    each from an empty cache, as `_windowed` reads them): the memory of
    one chunk, whatever the texts' length."""
    shape = tf.shape(inputs)
    size = self._chunk(shape[0])
    chunks = (shape[1] + size - 1) // size
    pad = [[0, 0], [0, chunks * size - shape[1]]]
    inputs, targets = tf.pad(inputs, pad), tf.pad(targets, pad)
    states = self.initial_states(shape[0])
    total = tf.zeros([shape[0]])
    for i in tf.range(chunks):
      tf.autograph.experimental.set_loop_options(shape_invariants=[
          (states[name], spec.shape)
          for name, spec in self.decoder.specs.items()])
      if self.context is not None:
        states = self.initial_states(shape[0])
      window = slice(i * size, (i + 1) * size)
      _, states, log_likelihood, _ = self._read(
          inputs[:, window], states, targets[:, window])
      total += log_likelihood
    return total

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def score(self, text_in):
    """Scores sentences as sentence-mode evaluation does.

    Each sentence is read from <eos> (the start symbol), and its tokens and
    the closing <eos> are the targets. `perplexity` is per token;
    `word_perplexity` divides the same log-likelihood by `num_words`, the
    text's whitespace-separated words + 1 (its end), as evaluation's
    perplexity per word does (for a word-level model of whitespace-split
    text, the same). Texts longer than a chunk (`_chunk`) are read chunk by
    chunk (`_log_likelihood_in_chunks`).
    """
    inputs, targets, num_tokens = self._right_padded(text_in)
    log_likelihood = tf.cond(
        tf.shape(inputs)[1] <= self._chunk(tf.shape(inputs)[0]),
        lambda: self._log_likelihood(inputs, targets),
        lambda: self._log_likelihood_in_chunks(inputs, targets))
    num_words = tf.cast(text.count_words(text_in), tf.int32) + 1
    return {"log_likelihood": log_likelihood, "num_tokens": num_tokens,
            "perplexity": tf.exp(-log_likelihood /
                                 tf.cast(num_tokens, tf.float32)),
            "num_words": num_words,
            "word_perplexity": tf.exp(-log_likelihood /
                                      tf.cast(num_words, tf.float32))}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def next_words(self, text_in):
    """The `top_k` most likely next words after each text: their words,
    ids, log-probabilities and probabilities, most likely first."""
    inputs, _, lengths = self._right_padded(text_in)
    # The output layer at the last positions only.
    last = self._logits(
        tf.gather(self._hidden_states(inputs), lengths - 1, batch_dims=1))
    top = self._top(tf.nn.log_softmax(self._without_padding(last)))
    return {"words": top["words"], "ids": top["ids"],
            "log_probs": top["log_probs"],
            "probabilities": tf.exp(top["log_probs"])}

  def _top(self, log_probs):
    """The `top_k` most likely words of <float32>[batch, vocab]
    log-probabilities: their ids, words and log-probabilities."""
    top = tf.math.top_k(log_probs, self.top_k)
    return {"ids": top.indices, "words": tf.gather(self.words, top.indices),
            "log_probs": top.values}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def tokenize(self, text_in):
    """The model's own tokenisation: each text's word ids then <eos>.

    The training tokeniser and vocabulary (unknown words -> <unk>), as the
    corpus's token store holds the same lines; for streaming clients, which
    feed these ids to `step`.
    """
    ids = self._checked_ids(text_in)
    eos = tf.fill([ids.nrows(), 1], text.EOS_ID)
    with_eos = tf.concat([ids, eos], axis=1)
    return {"token_ids": with_eos.to_tensor(text.PAD_ID),
            "num_tokens": tf.cast(with_eos.row_lengths(), tf.int32)}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32, "token_ids")])
  def log_probs(self, token_ids):
    """Log-probabilities of every next token; ids 0 are padding."""
    most = max(1, LOG_PROBS_BYTES // (4 * self.vocab_size))
    checks = self._check_request(tf.shape(token_ids)[0], tf.size(token_ids))
    checks.append(tf.debugging.assert_less_equal(
        tf.size(token_ids), most,
        message=f"log_probs returns tokens x {self.vocab_size:,} floats: at "
                f"most {most:,} tokens per request here (1 GiB); read longer "
                "texts with step or score"))
    if self.context is not None:
      checks.append(tf.debugging.assert_less_equal(
          tf.shape(token_ids)[1], self.decoder.max_positions,
          message=self.decoder.position_message))
    with tf.control_dependencies(checks + self._check_ids(token_ids,
                                                          "token_ids")):
      return {"log_probs": self._log_probs(token_ids)}

  def _invariants(self, rows, states):
    """Shape invariants of a while loop carrying `rows` ([batch, width]) and
    `states`."""
    return [(rows, tf.TensorShape([None, rows.shape[-1]]))] + [
        (states[name], spec.shape) for name, spec in self.decoder.specs.items()]

  def _read(self, inputs, states, targets=None):
    """Runs <int32>[batch, time] right-padded inputs through the decoder:
    all at once where the decoder has a fused op for the batch, else step by
    step.

    Padded steps (id 0, after a row's last token) leave a row's state
    unchanged, so rows of different lengths end in the state after their
    own last token.

    Returns:
      (the model's logits after each row's last real input (from its
      incoming state if it has none), new states, log-likelihood of the
      non-zero `targets`, their number).
    """
    scoring = targets is not None
    if not scoring:
      targets = tf.zeros_like(inputs)
    return self._fused_or(
        tf.shape(inputs)[0],
        lambda: self._read_at_once(inputs, states, targets, scoring),
        lambda: self._read_step_by_step(inputs, states, targets, scoring))

  def _read_at_once(self, inputs, states, targets, scoring):
    outputs, states = self.decoder.read(inputs, states)
    output_layer = self._logits
    last = tf.reduce_sum(tf.cast(inputs != text.PAD_ID, tf.int32), 1)
    log_likelihood = tf.zeros([tf.shape(inputs)[0]])
    if scoring:
      # One pass of the output layer (its weights are read once) for the
      # scored positions and the last ones.
      logits = output_layer(outputs)
      log_likelihood = self._target_log_likelihood(logits[:, 1:], targets)
      last_logits = tf.gather(logits, last, batch_dims=1)
    else:  # A prompt: the output layer at each row's last position only.
      last_logits = output_layer(tf.gather(outputs, last, batch_dims=1))
    return (last_logits, states, log_likelihood,
            tf.reduce_sum(tf.cast(targets != text.PAD_ID, tf.int32), 1))

  def _read_step_by_step(self, inputs, states, targets, scoring):
    # The decoder one token at a time; the output layer once, after the
    # loop (its weights are read once, not once per token).
    top = self.decoder.output(states)
    time = tf.shape(inputs)[1]
    outputs = tf.TensorArray(tf.float32, size=time, element_shape=top.shape)
    for t in tf.range(time):
      tf.autograph.experimental.set_loop_options(
          shape_invariants=self._invariants(top, states))
      token = inputs[:, t]
      real = token != text.PAD_ID
      hidden, states = self.decoder.advance(token, states, real)
      top = tf.where(real[:, None], hidden, top)
      outputs = outputs.write(t, hidden)
    output_layer = self._logits
    log_likelihood = tf.zeros([tf.shape(inputs)[0]])
    if scoring:
      hidden = tf.cond(
          time > 0, lambda: tf.transpose(outputs.stack(), [1, 0, 2]),
          lambda: tf.zeros([tf.shape(inputs)[0], 0, top.shape[-1]]))
      log_likelihood = self._target_log_likelihood(output_layer(hidden),
                                                   targets)
    num_tokens = tf.reduce_sum(tf.cast(targets != text.PAD_ID, tf.int32), 1)
    return output_layer(top), states, log_likelihood, num_tokens

  def _read_prompt(self, ids):
    """Runs the prompts (after <eos>); returns (last logits, decoder state)."""
    inputs = self._with_start(ids).to_tensor(text.PAD_ID)
    logits, states, _, _ = self._read(
        inputs, self.initial_states(tf.shape(inputs)[0]))
    return logits, states

  def _stream_step(self, inputs):
    """The `step` signature: one chunk of each row's stream, state in and out.

    Feeds `token_ids` (0 = padding at the end of shorter rows) from the given
    decoder state (`initial_states`: the start of a stream) and scores
    `targets` (the next token of each input; 0 = not scored).

    Returns:
      `log_likelihood` <float32>[batch] and `num_tokens` <int32>[batch] of
      the targets; the `top_k` most likely next words after each row's last
      input: `next_ids` <int32>[batch, k], `next_words` <string>[batch, k],
      `next_top_log_probs` <float32>[batch, k]; `next_log_probs`
      <float32>[batch, vocab], the whole distribution (padding excluded),
      if `step_log_probs`; and the new state under the input names.
    """
    token_ids, targets = inputs["token_ids"], inputs["targets"]
    states = {name: inputs[name] for name in self.decoder.specs}
    checks = (self._check_request(tf.shape(token_ids)[0], tf.size(token_ids))
              + self._check_ids(token_ids, "token_ids")
              + self._check_ids(targets, "targets")
              + self._check_batch(("token_ids", token_ids),
                                  [("targets", targets)]
                                  + list(states.items()))
              + [tf.debugging.assert_equal(
                  tf.shape(targets), tf.shape(token_ids),
                  message="targets must have the shape of token_ids")])
    if "state_mask" in states:  # A Transformer's cache: within its table.
      checks.append(tf.debugging.assert_less_equal(
          tf.shape(states["state_mask"])[1] + tf.shape(token_ids)[1],
          self.decoder.max_positions, message=self.decoder.position_message))
    with tf.control_dependencies(checks):
      real = token_ids != text.PAD_ID
    padding = tf.logical_not(real)
    checks = [
        tf.debugging.assert_equal(
            tf.cast(real, tf.int32),
            tf.cast(tf.sequence_mask(tf.reduce_sum(tf.cast(real, tf.int32), 1),
                                     tf.shape(real)[1]), tf.int32),
            message="token_ids must be padded (0) only after a row's last "
                    "token"),
        tf.debugging.assert_equal(
            tf.reduce_any(tf.logical_and(padding, targets != text.PAD_ID)),
            False, message="targets must be 0 where token_ids are padding")]
    token_ids, targets, states = self._checked(checks,
                                               (token_ids, targets, states))
    logits, states, log_likelihood, num_tokens = self._read(
        token_ids, states, targets)
    log_probs = tf.nn.log_softmax(self._without_padding(logits))
    top = self._top(log_probs)
    out = {"log_likelihood": log_likelihood, "num_tokens": num_tokens,
           "next_ids": top["ids"], "next_words": top["words"],
           "next_top_log_probs": top["log_probs"]}
    if self.step_log_probs:
      out["next_log_probs"] = log_probs
    out.update(states)
    return out

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, "prompt"),
      tf.TensorSpec([None], tf.int32, "max_tokens"),
      tf.TensorSpec([None], tf.float32, "temperature")])
  def generate(self, prompt, max_tokens, temperature):
    """Samples a continuation per row until <eos> or its `max_tokens`.

    Temperature 0 is greedy; negative temperatures are an InvalidArgument,
    and so is a max_tokens over the export's max_generate_tokens; max_tokens
    <= 0 gives an empty continuation. `sample` with top_k 0, top_p 1 and
    no seed.
    """
    batch = tf.shape(prompt)
    return self._generate(prompt, max_tokens, temperature,
                          tf.zeros(batch, tf.int32), tf.ones(batch),
                          tf.fill(batch, tf.constant(-1, tf.int64)))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, "prompt"),
      tf.TensorSpec([None], tf.int32, "max_tokens"),
      tf.TensorSpec([None], tf.float32, "temperature"),
      tf.TensorSpec([None], tf.int32, "top_k"),
      tf.TensorSpec([None], tf.float32, "top_p"),
      tf.TensorSpec([None], tf.int64, "seed")])
  def sample(self, prompt, max_tokens, temperature, top_k, top_p, seed):
    """`generate` with sampling controls, per row: only the `top_k` most
    likely words (0 = all), only the smallest set of most likely words
    whose probability reaches `top_p` (nucleus sampling; 1 = all), and a
    `seed` (>= 0: the same seed, prompt and settings give the same text,
    whatever else the batch holds; < 0: a fresh draw)."""
    return self._generate(prompt, max_tokens, temperature, top_k, top_p,
                          seed)

  def _generate(self, prompt, max_tokens, temperature, top_k, top_p, seed):
    """`sample`'s body (see there and `generate`)."""
    most = self.limits.max_generate_tokens
    checks = [tf.debugging.assert_greater_equal(
        temperature, 0.0, message="temperature must be >= 0 (0 = greedy)"),
              tf.debugging.assert_less_equal(
                  max_tokens, most,
                  message=f"max_tokens is at most max_generate_tokens={most} "
                          "in this export (kerasrnn-export "
                          "--max_generate_tokens)")]
    checks += [
        tf.debugging.assert_non_negative(
            top_k, message="top_k must be >= 0 (0 = every word)"),
        tf.debugging.assert_greater(
            top_p, 0.0, message="top_p must be in (0, 1] (1 = every word)"),
        tf.debugging.assert_less_equal(
            top_p, 1.0, message="top_p must be in (0, 1] (1 = every word)")]
    checks += self._check_batch(("prompt", prompt),
                                [("max_tokens", max_tokens),
                                 ("temperature", temperature),
                                 ("top_k", top_k), ("top_p", top_p),
                                 ("seed", seed)])
    with tf.control_dependencies(checks):
      limit = tf.maximum(max_tokens, 0)
    ids = self._checked_ids(prompt, "prompt")
    if self.context is not None:  # <eos>, the prompt, the new tokens.
      ids = self._checked([tf.debugging.assert_less_equal(
          tf.cast(ids.row_lengths(), tf.int32) + 1 + limit,
          self.decoder.max_positions,
          message=self.decoder.position_message)], ids)
    logits, states = self._read_prompt(ids)
    tokens, count = self._sample(logits, states, limit, temperature, top_k,
                                 top_p, seed)
    tokens = tf.ragged.boolean_mask(tokens, tokens != text.PAD_ID)
    if self.pieces is not None:
      # Pieces joined into text, with the space before a first piece that
      # starts a word: the prompt + this text is the whole text.
      out = self.pieces.detokenize(tf.gather(self.model_ids, tokens))
      first = tf.gather(self.words, tokens.to_tensor(text.PAD_ID)[:, :1])
      new_word = tf.strings.regex_full_match(
          tf.reshape(tf.pad(first, [[0, 0], [0, 1 - tf.shape(first)[1]]],
                            constant_values=""), [-1]), "\u2581.*")
      out = tf.where(new_word, tf.strings.join([" ", out]), out)
    else:
      out = tf.strings.reduce_join(tf.gather(self.words, tokens), axis=1,
                                   separator=" ")
    return {"text": out, "num_tokens": count}

  def _sample(self, logits, states, limit, temperature, top_k, top_p, seed):
    """`generate`'s loop from the prompts' logits and decoder state.

    Returns:
      (<int32>[batch, steps] tokens, 0 after a row's end; <int32>[batch]
      tokens per row).
    """
    batch = tf.shape(limit)[0]
    done = limit <= 0
    count = tf.zeros([batch], tf.int32)
    out = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    greedy = temperature <= 0
    scale = tf.where(greedy, 1.0, temperature)[:, None]
    step = 0
    while not tf.reduce_all(done):
      tf.autograph.experimental.set_loop_options(
          shape_invariants=self._invariants(logits, states))
      token = sampling.pick(self._without_padding(logits), step, greedy,
                            scale, top_k, top_p, seed)
      token = tf.where(done, text.PAD_ID, token)
      finished = token == text.EOS_ID
      emitted = tf.logical_and(tf.logical_not(done), tf.logical_not(finished))
      out = out.write(step, tf.where(emitted, token, text.PAD_ID))
      count += tf.cast(emitted, tf.int32)
      done = tf.logical_or(done, tf.logical_or(finished, count >= limit))
      # Finished rows feed padding: their state no longer changes.
      hidden, states = self.decoder.advance(
          tf.where(done, text.PAD_ID, token), states, tf.logical_not(done))
      logits = self._logits(hidden)
      step += 1
    tokens = tf.cond(out.size() > 0, lambda: tf.transpose(out.stack()),
                     lambda: tf.zeros([batch, 0], tf.int32))
    return tokens, count

  @tf.function(input_signature=[])
  def metadata(self):
    """The model card (as assets.extra/model.json holds it): one JSON
    string."""
    return {"model_card": tf.constant(self.card)}

  def signatures(self):
    """The serving signatures, by name (serving_default = score)."""
    score = self.score.get_concrete_function()
    return {"serving_default": score, "score": score,
            "next_words": self.next_words.get_concrete_function(),
            "generate": self.generate.get_concrete_function(),
            "sample": self.sample.get_concrete_function(),
            "log_probs": self.log_probs.get_concrete_function(),
            "tokenize": self.tokenize.get_concrete_function(),
            "step": self.step.get_concrete_function(),
            "metadata": self.metadata.get_concrete_function()}

