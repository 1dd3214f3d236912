"""What the model's output layers share (`language_model.Logits`, the full
softmax's logits, and `adaptive.AdaptiveSoftmax`): a vocabulary, two
initializers, no Keras mask on the output, and the targets' NLL."""
import keras


class OutputLayer(keras.layers.Layer):
  """Hidden states -> one score per word of the vocabulary.

  The output carries no Keras mask: the loss and the perplexity metric mask
  padding by its target id (0) themselves, and a mask on the scores would
  make Keras re-weight the per-sequence loss sums.

  Args:
    vocab_size: number of ids, padding (0) included.
    kernel_initializer, bias_initializer: of the layer's kernels and biases.
  """

  # Whether the scores are log-probabilities already (else logits, whose
  # log_softmax is the distribution).
  log_probabilities = False

  def __init__(self, vocab_size, kernel_initializer=None,
               bias_initializer="zeros", **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.kernel_initializer = kernel_initializer or "glorot_uniform"
    self.bias_initializer = bias_initializer

  def nll(self, x, targets):
    """<float32>[batch, time] NLL of each target (0 at padding)."""
    raise NotImplementedError

  def get_config(self):
    config = super().get_config()
    config.update(vocab_size=self.vocab_size,
                  kernel_initializer=keras.initializers.serialize(
                      keras.initializers.get(self.kernel_initializer)),
                  bias_initializer=keras.initializers.serialize(
                      keras.initializers.get(self.bias_initializer)))
    return config

  def compute_mask(self, inputs, mask=None):
    return None

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.vocab_size,)
