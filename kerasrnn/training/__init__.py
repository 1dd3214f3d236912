"""Training: exact perplexity, callbacks, the training loop and evaluation."""
