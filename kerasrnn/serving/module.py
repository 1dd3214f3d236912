"""The exported graph: raw text in, scores / next words / samples out.

`LanguageModelModule` wraps a trained, stateless copy of the model with the
vocabulary and kerasrnn's text preprocessing inside the graph. Its
`tf.function`s, each with an explicit batch-major input signature, become the
SavedModel's serving signatures (documented in export/README.md); `step`
carries the recurrent state through its inputs and outputs instead.

A Transformer has no recurrent state: `generate` re-reads each row's prefix
(prompt and words so far) at every new word, and there is no `step`
signature (its state would be the whole prefix, or a key/value cache).
"""
import tensorflow as tf

from kerasrnn.data import text
from kerasrnn.models import rnn_layers


def _num_states(cell):
  return len(tf.nest.flatten(cell.state_size))


def _cell_step(cell, x, states):
  """One step of a Keras LSTM/GRU cell; returns (output, states as a list)."""
  out, new_states = cell(x, states, training=False)
  return out, list(new_states) if isinstance(new_states, (list, tuple)) else [
      new_states]


class LanguageModelModule(tf.Module):
  """Serving functions of a trained language model.

  Args:
    model: a stateless kerasrnn model (sentence mode) with trained weights.
    vocab_file: path of vocab.txt; it becomes a SavedModel asset.
    vocab_words: the same words, in id order (for id -> word).
    lowercase, tokenizer: the run's text preprocessing (config.data).
    top_k: how many words `next_words` returns.
    max_new_tokens: cap on `generate`'s max_tokens.
  """

  def __init__(self, model, vocab_file, vocab_words, lowercase=False,
               tokenizer="whitespace", top_k=10, max_new_tokens=200):
    super().__init__(name="kerasrnn")
    self.model = model
    # Listed explicitly (as keras.export.ExportArchive does) so that every
    # weight is a named variable of the SavedModel's checkpoint, which the
    # TF1-style loader of TF Serving and saved_model_cli restores.
    self.model_variables = [v.value for v in model.weights]
    self.lowercase = lowercase
    self.tokenizer = tokenizer
    self.top_k = top_k
    self.max_new_tokens = max_new_tokens
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
    self._embedding = model.get_layer("embedding")
    self._cells = [layer.cell for layer in rnn_layers(model)]
    self._logits = model.get_layer("logits")
    self.recurrent = bool(self._cells)
    if not self.recurrent:
      self.state_units = None  # No `step` signature.
      return
    # One named input (and output) per state tensor: state_<layer>_h, and
    # state_<layer>_c for an LSTM (Keras's order of the cell's states).
    self.state_names = [
        [f"state_{i}_{part}" for part in "hc"[:_num_states(cell)]]
        for i, cell in enumerate(self._cells)]
    self.state_units = {name: cell.units for cell, names in zip(
        self._cells, self.state_names) for name in names}
    # One dict of named inputs: flat named tensors for TF Serving, and one
    # argument for callers such as keras.layers.TFSMLayer.
    specs = {name: tf.TensorSpec([None, None], tf.int32, name)
             for name in ("token_ids", "targets")}
    specs.update({name: tf.TensorSpec([None, units], tf.float32, name)
                  for name, units in self.state_units.items()})
    self.step = tf.function(self._stream_step, input_signature=[specs])

  def _ids(self, strings):
    """<string>[batch] -> ragged <int32>[batch, (words)]; unknown -> <unk>."""
    tokens = text.tokenize(strings, self.lowercase, self.tokenizer)
    ids = tf.cast(self.table.lookup(tokens), tf.int32)
    # '<pad>' typed by a client is a word like any other unknown one.
    return tf.where(ids == text.PAD_ID, text.UNK_ID, ids)

  def _check_ids(self, ids, name):
    """InvalidArgument unless every id of input `name` is in the vocabulary."""
    message = f"{name} must be ids in [0, {self.vocab_size}) (0 = padding)"
    return [tf.debugging.assert_non_negative(ids, message=message),
            tf.debugging.assert_less(ids, self.vocab_size, message=message)]

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

  def _model_logits(self, token_ids):
    # Keras's recurrent layers fail on an empty batch, whose answer is
    # empty anyway.
    shape = tf.shape(token_ids)
    return tf.cond(
        tf.size(token_ids) > 0,
        lambda: self.model(token_ids, training=False),
        lambda: tf.zeros([shape[0], shape[1], self.vocab_size]))

  def _log_probs(self, token_ids):
    # The model's own distribution, exactly as evaluation scores it.
    return tf.nn.log_softmax(self._model_logits(token_ids))

  def _without_padding(self, logits):
    # Padding is never a word to predict or sample.
    return logits + tf.one_hot(text.PAD_ID, self.vocab_size, on_value=-1e9)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def score(self, text_in):
    """Scores sentences as sentence-mode evaluation does.

    Each sentence is read from <eos> (the start symbol), and its words and
    the closing <eos> are the targets.
    """
    ids = self._ids(text_in)
    inputs = self._with_start(ids)
    eos = tf.fill([ids.nrows(), 1], text.EOS_ID)
    targets = tf.concat([ids, eos], axis=1)
    log_probs = self._log_probs(inputs.to_tensor(text.PAD_ID))
    dense_targets = targets.to_tensor(text.PAD_ID)
    picked = tf.gather(log_probs, dense_targets, batch_dims=2)
    real = tf.cast(dense_targets != text.PAD_ID, tf.float32)
    log_likelihood = tf.reduce_sum(picked * real, axis=1)
    num_tokens = tf.cast(targets.row_lengths(), tf.int32)
    return {"log_likelihood": log_likelihood, "num_tokens": num_tokens,
            "perplexity": tf.exp(-log_likelihood /
                                 tf.cast(num_tokens, tf.float32))}

  def _last_log_probs(self, ids):
    """Log-probabilities of the word after each row's last word."""
    inputs = self._with_start(ids)
    log_probs = self._log_probs(inputs.to_tensor(text.PAD_ID))
    last = tf.cast(inputs.row_lengths() - 1, tf.int32)
    return tf.gather(log_probs, last, batch_dims=1)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def next_words(self, text_in):
    """The `top_k` most likely next words after each text."""
    log_probs = self._last_log_probs(self._ids(text_in))
    top = tf.math.top_k(tf.nn.log_softmax(self._without_padding(log_probs)),
                        self.top_k)
    return {"words": tf.gather(self.words, top.indices),
            "probabilities": tf.exp(top.values)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "text")])
  def tokenize(self, text_in):
    """The model's own tokenisation: each text's word ids then <eos>.

    The training tokeniser and vocabulary (unknown words -> <unk>), as the
    corpus's token store holds the same lines; for streaming clients, which
    feed these ids to `step`.
    """
    ids = self._ids(text_in)
    eos = tf.fill([ids.nrows(), 1], text.EOS_ID)
    with_eos = tf.concat([ids, eos], axis=1)
    return {"token_ids": with_eos.to_tensor(text.PAD_ID),
            "num_tokens": tf.cast(with_eos.row_lengths(), tf.int32)}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32, "token_ids")])
  def log_probs(self, token_ids):
    """Log-probabilities of every next token; ids 0 are padding."""
    with tf.control_dependencies(self._check_ids(token_ids, "token_ids")):
      return {"log_probs": self._log_probs(token_ids)}

  def _initial_states(self, batch):
    return [[tf.zeros([batch, cell.units]) for _ in range(_num_states(cell))]
            for cell in self._cells]

  def _step(self, token, states):
    """Feeds one token per row; returns (<float32>[batch, vocab] logits, states).

    The logits are the model's own (padding included), as evaluation
    scores them; `_without_padding` makes them a distribution over words.
    """
    x = tf.nn.embedding_lookup(self._embedding.embeddings, token)
    new_states = []
    for cell, s in zip(self._cells, states):
      x, s = _cell_step(cell, x, s)
      new_states.append(s)
    return self._logits(x), new_states

  def _read(self, inputs, states, targets=None):
    """Runs <int32>[batch, time] inputs through the cells, step by step.

    Padded steps (id 0) leave a row's state unchanged, so rows of different
    lengths end in the state after their own last token.

    Returns:
      (the model's logits after each row's last real input (from its
      incoming state if it has none), new states, log-likelihood of the
      non-zero `targets`, their number).
    """
    batch = tf.shape(inputs)[0]
    # The output of the top layer is its h: the logits of the incoming state.
    logits = self._logits(states[-1][0])
    log_likelihood = tf.zeros([batch])
    scoring = targets is not None
    if not scoring:
      targets = tf.zeros_like(inputs)
    for t in tf.range(tf.shape(inputs)[1]):
      tf.autograph.experimental.set_loop_options(shape_invariants=[
          (logits, tf.TensorShape([None, self.vocab_size]))])
      token = inputs[:, t]
      step_logits, step_states = self._step(token, states)
      real = token != text.PAD_ID
      states = tf.nest.map_structure(
          lambda new, old: tf.where(real[:, None], new, old), step_states,
          states)
      logits = tf.where(real[:, None], step_logits, logits)
      if scoring:
        target = targets[:, t]
        picked = tf.gather(tf.nn.log_softmax(step_logits), target,
                           batch_dims=1)
        log_likelihood += tf.where(target != text.PAD_ID, picked, 0.0)
    num_tokens = tf.reduce_sum(tf.cast(targets != text.PAD_ID, tf.int32), 1)
    return logits, states, log_likelihood, num_tokens

  def _read_prompt(self, ids):
    """Runs the prompts (after <eos>); returns (last logits, decoder state).

    The state is the recurrent state, or for a Transformer the prefix read
    so far ([batch, time] ids, padded at the end, and each row's length).
    """
    prompts = self._with_start(ids)
    inputs = prompts.to_tensor(text.PAD_ID)
    if not self.recurrent:
      lengths = tf.cast(prompts.row_lengths(), tf.int32)
      return self._last_logits(inputs, lengths), (inputs, lengths)
    logits, states, _, _ = self._read(
        inputs, self._initial_states(tf.shape(inputs)[0]))
    return logits, states

  def _last_logits(self, inputs, lengths):
    """The model's logits after each row's last real input (Transformer)."""
    return tf.gather(self._model_logits(inputs), tf.maximum(lengths - 1, 0),
                     batch_dims=1)

  def _next(self, token, state):
    """Feeds one token per row: (<float32>[batch, vocab] logits, state)."""
    if self.recurrent:
      return self._step(token, state)
    inputs, lengths = state
    inputs = tf.pad(inputs, [[0, 0], [0, 1]])  # Room for one more word.
    rows = tf.range(tf.shape(inputs)[0])
    inputs = tf.tensor_scatter_nd_update(
        inputs, tf.stack([rows, lengths], axis=1), token)
    lengths += 1
    return self._last_logits(inputs, lengths), (inputs, lengths)

  def _stream_step(self, inputs):
    """The `step` signature: one chunk of each row's stream, state in and out.

    Feeds `token_ids` (0 = padding at the end of shorter rows) from the given
    recurrent state (all zeros = the start of a stream) and scores `targets`
    (the next token of each input; 0 = not scored).

    Returns:
      `log_likelihood` <float32>[batch] and `num_tokens` <int32>[batch] of
      the targets; `next_log_probs` <float32>[batch, vocab]: the next word's
      distribution after each row's last input (padding excluded); and the
      new state under the input names.
    """
    names = [n for layer in self.state_names for n in layer]
    token_ids, targets = inputs["token_ids"], inputs["targets"]
    flat_states = [inputs[n] for n in names]
    checks = (self._check_ids(token_ids, "token_ids")
              + self._check_ids(targets, "targets")
              + self._check_batch(("token_ids", token_ids),
                                  [("targets", targets)]
                                  + list(zip(names, flat_states)))
              + [tf.debugging.assert_equal(
                  tf.shape(targets), tf.shape(token_ids),
                  message="targets must have the shape of token_ids")])
    with tf.control_dependencies(checks):
      token_ids, targets = tf.identity(token_ids), tf.identity(targets)
      flat_states = [tf.identity(s) for s in flat_states]
    it = iter(flat_states)
    states = [[next(it) for _ in layer] for layer in self.state_names]
    logits, states, log_likelihood, num_tokens = self._read(
        token_ids, states, targets)
    out = {"log_likelihood": log_likelihood, "num_tokens": num_tokens,
           "next_log_probs": tf.nn.log_softmax(self._without_padding(logits))}
    out.update(zip(names, tf.nest.flatten(states)))
    return out

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, "prompt"),
      tf.TensorSpec([None], tf.int32, "max_tokens"),
      tf.TensorSpec([None], tf.float32, "temperature")])
  def generate(self, prompt, max_tokens, temperature):
    """Samples a continuation per row until <eos> or its `max_tokens`.

    Temperature 0 is greedy; negative temperatures are an InvalidArgument.
    max_tokens <= 0 gives an empty continuation; it is capped at
    `max_new_tokens`.
    """
    checks = [tf.debugging.assert_greater_equal(
        temperature, 0.0, message="temperature must be >= 0 (0 = greedy)")]
    checks += self._check_batch(("prompt", prompt),
                                [("max_tokens", max_tokens),
                                 ("temperature", temperature)])
    with tf.control_dependencies(checks):
      limit = tf.clip_by_value(max_tokens, 0, self.max_new_tokens)
    logits, states = self._read_prompt(self._ids(prompt))
    batch = tf.shape(limit)[0]
    done = limit <= 0
    count = tf.zeros([batch], tf.int32)
    out = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    greedy = temperature <= 0
    scale = tf.where(greedy, 1.0, temperature)[:, None]
    step = 0
    while not tf.reduce_all(done):
      tf.autograph.experimental.set_loop_options(shape_invariants=[
          (logits, tf.TensorShape([None, self.vocab_size]))] + (
              [] if self.recurrent else
              [(states[0], tf.TensorShape([None, None]))]))
      words_only = self._without_padding(logits)
      sampled = tf.random.categorical(words_only / scale, 1,
                                      dtype=tf.int32)[:, 0]
      token = tf.where(greedy,
                       tf.argmax(words_only, -1, output_type=tf.int32),
                       sampled)
      token = tf.where(done, text.PAD_ID, token)
      finished = token == text.EOS_ID
      emitted = tf.logical_and(tf.logical_not(done), tf.logical_not(finished))
      out = out.write(step, tf.where(emitted, token, text.PAD_ID))
      count += tf.cast(emitted, tf.int32)
      done = tf.logical_or(done, tf.logical_or(finished, count >= limit))
      logits, states = self._next(tf.where(done, text.EOS_ID, token), states)
      step += 1
    tokens = tf.cond(out.size() > 0, lambda: tf.transpose(out.stack()),
                     lambda: tf.zeros([batch, 0], tf.int32))
    words = tf.ragged.boolean_mask(tf.gather(self.words, tokens),
                                   tokens != text.PAD_ID)
    return {"text": tf.strings.reduce_join(words, axis=1, separator=" "),
            "num_tokens": count}

  def signatures(self):
    """The serving signatures, by name (serving_default = score)."""
    score = self.score.get_concrete_function()
    signatures = {"serving_default": score, "score": score,
                  "next_words": self.next_words.get_concrete_function(),
                  "generate": self.generate.get_concrete_function(),
                  "log_probs": self.log_probs.get_concrete_function(),
                  "tokenize": self.tokenize.get_concrete_function()}
    if self.recurrent:
      signatures["step"] = self.step.get_concrete_function()
    return signatures

