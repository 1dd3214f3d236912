"""Dropout variants of the modern recipe (Gal & Ghahramani 2016, Merity et al.
2018), as Keras layers that are identities at inference.

- `dropout(rate, locked)`: Keras's `Dropout`; `locked` draws one mask per
  sequence and feature, shared by every time step (`noise_shape`). Under
  `tf.distribute` each replica draws its own masks for its rows (Keras's
  layer would draw the same on every replica: rows i and i + batch/n would
  share their masks).
- `Embedding(word_dropout=p)`: drops whole words: per batch, each word of the
  vocabulary is dropped (its vector zeroed wherever it occurs) with
  probability p, the rest scaled by 1 / (1 - p). Its lookup reads only the
  rows it needs (large vocabularies).
- Weight drop (DropConnect on the recurrent kernel) lives in
  `kerasrnn.models.recurrent`, inside the time loop it changes.
"""
import keras
from keras import ops
import tensorflow as tf


def dropout(rate, locked, name):
  """A Dropout layer on [batch, time, features]; `locked`: one mask per row."""
  return Dropout(rate, noise_shape=(None, 1, None) if locked else None,
                 name=name)


class Dropout(keras.layers.Dropout):
  """`keras.layers.Dropout` whose masks differ between the replicas of a
  `tf.distribute` step: the replica's number is folded into the step's
  seed. With one replica it is Keras's layer, draw for draw.

  (Word dropout and weight drop draw one mask per batch for every row, as
  on one device, so their replicas share it by design.)
  """

  def call(self, inputs, training=False):
    context = tf.distribute.get_replica_context()
    if (not training or not self.rate or context is None
        or context.num_replicas_in_sync == 1):
      return super().call(inputs, training=training)
    seed = tf.random.experimental.stateless_fold_in(
        tf.cast(self.seed_generator.next(), tf.int64),
        context.replica_id_in_sync_group)
    shape = tf.shape(inputs)
    noise_shape = None if self.noise_shape is None else [
        shape[i] if n is None else n for i, n in enumerate(self.noise_shape)]
    return tf.nn.experimental.stateless_dropout(
        inputs, self.rate, seed, noise_shape=noise_shape)


class Embedding(keras.layers.Embedding):
  """`keras.layers.Embedding` with word dropout (same weights and name).

  Args:
    word_dropout: probability of dropping a word (all its occurrences in
      the batch) during training.
    seed: seed of the word masks.
  """

  def __init__(self, *args, word_dropout=0.0, seed=None, **kwargs):
    super().__init__(*args, **kwargs)
    self.word_dropout = word_dropout
    if word_dropout:
      self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, inputs, training=None):
    # Gathered from the variable itself: Keras's `ops.take` would first read
    # the whole matrix (a 214 MB copy per step at 267,735 x 200), and the
    # gradient stays the gathered rows either way.
    # (Keras does not autocast an embedding: the rows are cast instead.)
    outputs = ops.cast(
        tf.gather(self.embeddings.value, ops.cast(inputs, "int32")),
        self.compute_dtype)
    if not (training and self.word_dropout):
      return outputs
    keep = keras.random.dropout(ops.ones([self.input_dim], outputs.dtype),
                                self.word_dropout, seed=self.seed_generator)
    return outputs * ops.expand_dims(
        ops.take(keep, ops.cast(inputs, "int32")), -1)

  def get_config(self):
    return {**super().get_config(), "word_dropout": self.word_dropout}
