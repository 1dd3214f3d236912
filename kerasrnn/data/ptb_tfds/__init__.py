"""TFDS builder for PTB; importing this package registers 'ptb_text'."""
from kerasrnn.data.ptb_tfds.ptb_text import PtbText
