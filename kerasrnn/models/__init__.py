"""Keras language models: one builder for every cell, mode and size."""
from kerasrnn.models.language_model import build_model
from kerasrnn.models.language_model import rnn_layers
