"""Parameter counts of recurrent layers, from the formulas.

For input size n and m units:
  LSTM (Keras, one bias per gate):   4 (n m + m m + m)
  LSTM (PyTorch/cuDNN, two biases):  4 (n m + m m + 2 m)
  GRU, reset_after=False (Cho et al., EMNLP 2014): 3 (n m + m m + m)
  GRU, reset_after=True (Keras/cuDNN default, separate recurrent bias):
                                     3 (n m + m m + 2 m)
and for a Transformer block of width d and feed-forward width f:
  4 (d d + d)   query, key, value and output projections
  + 2 d f + f + d   feed-forward
  + 4 d   two layer norms.
"""
from kerasrnn.errors import UserError
from kerasrnn.models import adaptive

_GATES = {"lstm": 4, "gru": 3}


def recurrent_parameters(cell, input_size, units, two_biases=False):
  """Number of weights of one recurrent layer.

  Args:
    cell: 'lstm' or 'gru'.
    input_size: width n of the layer's input.
    units: number of units m.
    two_biases: PyTorch's LSTM (b_ih and b_hh), or a GRU with
      reset_after=True; False for Keras's LSTM and reset_after=False.

  Returns:
    gates * (n*m + m*m + biases*m).
  """
  if cell not in _GATES:
    raise UserError(f"unknown cell {cell!r} (lstm or gru)")
  biases = 2 if two_biases else 1
  return _GATES[cell] * (input_size * units + units * units + biases * units)


def transformer_block_parameters(depth, ffn_size):
  """Number of weights of one pre-norm Transformer block."""
  return 4 * (depth * depth + depth) + 2 * depth * ffn_size + ffn_size + (
      depth) + 4 * depth


def model_parameters(model_config, vocab_size):
  """{layer name: count} of the language model built from `model_config`."""
  m = model_config
  embedding = m.embedding_size or m.hidden_size
  counts = {"embedding": vocab_size * embedding}
  if m.cell == "transformer":
    for i in range(m.num_layers):
      counts[f"block_{i}"] = transformer_block_parameters(
          m.hidden_size, m.ffn_size or 4 * m.hidden_size)
    counts["final_norm"] = 2 * m.hidden_size
    counts["logits"] = _output_parameters(m, m.hidden_size, vocab_size)
    return counts
  two_biases = m.cell == "gru" and m.gru_reset_after
  sizes = [m.hidden_size] * m.num_layers
  if m.tie_embeddings:  # The last layer's output is the embedding's size.
    sizes[-1] = embedding
  for i, units in enumerate(sizes):
    counts[f"{m.cell}_{i}"] = recurrent_parameters(
        m.cell, embedding if i == 0 else sizes[i - 1], units, two_biases)
  counts["logits"] = _output_parameters(m, sizes[-1], vocab_size)
  return counts


def _output_parameters(m, depth, vocab_size):
  if m.get("softmax", "full") == "adaptive":
    return adaptive.parameters(depth, vocab_size, m.adaptive_cutoffs,
                               m.adaptive_factor)
  return vocab_size + (0 if m.tie_embeddings else depth * vocab_size)
