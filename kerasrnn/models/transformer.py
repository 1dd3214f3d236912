"""A decoder-only Transformer language model from Keras layers.

Embedding (x sqrt(d)) + sinusoidal positions -> dropout -> N pre-norm
blocks [LayerNorm -> causal self-attention -> dropout -> +; LayerNorm ->
feed-forward -> dropout -> +] -> LayerNorm -> logits (tied or not).

Variable-length input is handled by two masks inside each block's
attention: the causal mask (position t sees positions <= t) and the padding
mask from the embedding (`mask_zero` in sentence mode: no position attends
to padding). Padding positions still get outputs; their targets are 0, so
the loss and the exact perplexity skip them as for the RNNs. There is no
state in training: in stream mode each window is one sequence (a token sees
only the earlier tokens of its window). For generation and streaming,
`DecoderBlock.extend` computes one new position from a key/value cache of
the earlier ones (kerasrnn/serving/module.py).
"""
import math

import keras
from keras import ops
import numpy as np


def sinusoids(length, depth):
  """<float32>[length, depth] positions of Vaswani et al. (2017)."""
  positions = np.arange(length)[:, None]
  rates = 1.0 / 10000 ** (np.arange(0, depth, 2) / depth)
  table = np.zeros((length, depth), np.float32)
  table[:, 0::2] = np.sin(positions * rates)
  table[:, 1::2] = np.cos(positions * rates)[:, :depth // 2]
  return table


class PositionalEmbedding(keras.layers.Layer):
  """Scales embeddings by sqrt(depth) and adds sinusoidal positions.

  Any length works (positions are computed, not learned); the mask passes.
  """

  def __init__(self, max_length=4096, **kwargs):
    super().__init__(**kwargs)
    self.max_length = max_length
    self.supports_masking = True

  def call(self, x):
    depth = x.shape[-1]
    table = ops.convert_to_tensor(sinusoids(self.max_length, depth), x.dtype)
    length = ops.shape(x)[1]
    return x * math.sqrt(depth) + table[None, :length]

  def get_config(self):
    return {**super().get_config(), "max_length": self.max_length}


def attention_mask(mask, length):
  """<bool>[batch, length, length]: causal, and no attending to padding."""
  positions = ops.arange(length)
  causal = (positions[:, None] >= positions[None, :])[None]
  if mask is None:
    return causal
  return ops.logical_and(causal, ops.cast(mask, "bool")[:, None, :])


class DecoderBlock(keras.layers.Layer):
  """One pre-norm block: causal self-attention, then a feed-forward layer.

  Args:
    num_heads: attention heads (the model width divides among them).
    ffn_size: width of the feed-forward layer's hidden layer.
    dropout: on the attention weights and each sub-layer's output.
    initializer: of the dense kernels.
  """

  def __init__(self, num_heads, ffn_size, dropout=0.0, initializer=None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.ffn_size = ffn_size
    self.dropout = dropout
    self.initializer = initializer or "glorot_uniform"
    self.supports_masking = True

  def build(self, input_shape):
    depth = input_shape[-1]
    self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_1")
    self.attention = keras.layers.MultiHeadAttention(
        self.num_heads, depth // self.num_heads, dropout=self.dropout,
        kernel_initializer=self.initializer, name="attention")
    self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_2")
    self.ffn_in = keras.layers.Dense(self.ffn_size, activation="gelu",
                                     kernel_initializer=self.initializer,
                                     name="ffn_in")
    self.ffn_out = keras.layers.Dense(depth, kernel_initializer=self.initializer,
                                      name="ffn_out")
    self.drop = keras.layers.Dropout(self.dropout)
    self.norm_1.build(input_shape)
    self.attention.build(input_shape, input_shape)
    self.norm_2.build(input_shape)
    self.ffn_in.build(input_shape)
    self.ffn_out.build(tuple(input_shape[:-1]) + (self.ffn_size,))

  def call(self, x, mask=None, training=False):
    y = self.norm_1(x)
    y = self.attention(y, y, attention_mask=attention_mask(mask, ops.shape(x)[1]),
                       training=training)
    x = x + self.drop(y, training=training)
    y = self.ffn_out(self.ffn_in(self.norm_2(x)))
    return x + self.drop(y, training=training)

  def extend(self, x, keys, values, mask):
    """The block at one new position per row, from a key/value cache.

    Computes what `call` computes at the position after the cached ones,
    attending to the cached keys and values instead of recomputing them
    (inference: no dropout).

    Args:
      x: <float>[batch, depth] the block's input at the new position.
      keys, values: <float>[batch, cached, heads, head_size] of the earlier
        positions (as the attention layer projects them).
      mask: <bool>[batch, cached + 1] which cached positions, and the new
        one, are real (padding is never attended to).

    Returns:
      (<float>[batch, depth] output, keys and values with the new
      position's appended).
    """
    attention = self.attention
    y = self.norm_1(x)[:, None]
    query = attention.query_dense(y)
    keys = ops.concatenate([keys, attention.key_dense(y)], axis=1)
    values = ops.concatenate([values, attention.value_dense(y)], axis=1)
    scores = ops.einsum("bqhd,bkhd->bhqk", query, keys) / math.sqrt(
        query.shape[-1])
    scores = ops.where(mask[:, None, None, :], scores, -1e9)
    # A softmax written out: Keras's warns when the first position is the
    # only key (the static length is then 1), which is right here.
    weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
    weights = weights / ops.sum(weights, axis=-1, keepdims=True)
    y = attention.output_dense(ops.einsum("bhqk,bkhd->bqhd", weights, values))
    x = x + y[:, 0]
    return x + self.ffn_out(self.ffn_in(self.norm_2(x))), keys, values

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "num_heads": self.num_heads,
            "ffn_size": self.ffn_size, "dropout": self.dropout,
            "initializer": keras.initializers.serialize(
                keras.initializers.get(self.initializer))}
