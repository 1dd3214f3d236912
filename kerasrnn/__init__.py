"""kerasrnn: word-level LSTM, GRU (and Transformer) language models, Keras 3.

The package is organised along the data's way through it:
`kerasrnn.data` (corpora, vocabulary, tf.data pipelines) → `kerasrnn.models` →
`kerasrnn.training` (exact perplexity, schedules, the training loop) →
`kerasrnn.serving` (SavedModel export) → `kerasrnn.report`.
"""

__version__ = "0.5.0"
