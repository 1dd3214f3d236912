"""Drawing the next token: temperature, top-k, top-p (nucleus) and seeds.

A seeded row's noise is a counter-based hash of (seed, step, word), so the
same seed gives the same text whatever else the batch holds.
"""
import tensorflow as tf


def seeded_uniform(seed, step, size):
  """<float32>[rows, size] uniform in (0, 1): row r's values depend only on
  seed[r], the step and the column (a counter-based hash, splitmix32's
  finaliser, in int64 arithmetic kept to 32 bits), so that a seeded row
  draws the same whatever else its batch holds."""
  bits = tf.bitwise
  low = lambda v: bits.bitwise_and(v, tf.constant(0xFFFFFFFF, tf.int64))
  mix = lambda v, shift: bits.bitwise_xor(
      v, bits.right_shift(v, tf.constant(shift, tf.int64)))
  seed = tf.cast(seed, tf.int64)[:, None]
  x = low(low(seed) * 0x9E3779B9
          + low(bits.right_shift(seed, tf.constant(32, tf.int64))) * 0x632BE5AB
          + tf.cast(step, tf.int64) * 0x85EBCA6B
          + tf.range(size, dtype=tf.int64)[None, :])
  x = low(mix(x, 16) * 0x7FEB352D)
  x = low(mix(x, 15) * 0x846CA68B)
  x = mix(x, 16)
  return (tf.cast(bits.right_shift(x, tf.constant(8, tf.int64)), tf.float32)
          + 0.5) / float(1 << 24)


def pick(logits, step, greedy, scale, top_k, top_p, seed):
  """Each row's next token: the most likely (greedy rows), else a draw
  from its logits / temperature cut to its top_k and top_p (Gumbel-max:
  the argmax of the logits plus Gumbel noise, which is a draw from
  their softmax). `logits`: <float32>[batch, vocab], padding excluded
  (-1e9); `seed` per row (< 0: a fresh draw), with the `step` it keys
  `seeded_uniform`."""
  vocab_size = tf.shape(logits)[-1]
  scaled = logits / scale
  lowest = tf.fill(tf.shape(scaled), float("-inf"))
  k = tf.minimum(tf.reduce_max(tf.concat([top_k, [0]], 0)), vocab_size)

  def cut_to_top_k():
    best = tf.math.top_k(scaled, k).values
    kth = tf.gather(best, tf.clip_by_value(top_k, 1, k) - 1, batch_dims=1)
    return tf.where((top_k > 0)[:, None] & (scaled < kth[:, None]), lowest,
                    scaled)

  scaled = tf.cond(k > 0, cut_to_top_k, lambda: scaled)

  def cut_to_top_p():
    ordered = tf.sort(scaled, direction="DESCENDING")
    before = tf.math.cumsum(tf.nn.softmax(ordered), axis=-1, exclusive=True)
    # The words whose more likely words hold less than top_p (the first
    # always): the smallest set reaching top_p.
    kept = tf.reduce_min(tf.where(before < top_p[:, None], ordered,
                                  float("inf")), axis=-1)
    return tf.where(scaled < kept[:, None], lowest, scaled)

  scaled = tf.cond(tf.reduce_any(top_p < 1.0), cut_to_top_p, lambda: scaled)
  fresh = tf.random.uniform(tf.shape(scaled), 1e-12, 1.0)
  noise = tf.cond(  # The hash only where a row is seeded.
      tf.reduce_any(seed >= 0),
      lambda: tf.where((seed >= 0)[:, None],
                       seeded_uniform(seed, step, vocab_size), fresh),
      lambda: fresh)
  drawn = tf.argmax(scaled - tf.math.log(-tf.math.log(noise)), -1,
                    output_type=tf.int32)
  return tf.where(greedy, tf.argmax(logits, -1, output_type=tf.int32), drawn)
