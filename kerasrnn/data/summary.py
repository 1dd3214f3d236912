"""What `kerasrnn-data` prints: a corpus's and its pipeline's numbers."""
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus


def pipeline_stats(dataset):
  """Counts batches, target tokens and padded positions of a pipeline."""
  batches = targets = positions = 0
  for _, y in dataset.as_numpy_iterator():
    batches += 1
    targets += int((y != 0).sum())
    positions += y.size
  return {"batches": batches, "target_tokens": targets,
          "padded_positions": positions - targets,
          "padding_overhead": round((positions - targets) / max(targets, 1), 4)}


def describe(config):
  """Returns a JSON-able dict: vocabulary size, split sizes, pipeline stats."""
  data = config.data
  corpus = load_corpus(data)
  out = {"vocab_size": len(corpus.vocab), "mode": data.mode,
         "batch_size": data.batch_size, "splits": {}}
  for name, split in corpus.splits.items():
    ds = pipelines.make_dataset(data, corpus, name, training=(name == "train"))
    stats = {"tokens": split.num_tokens, "sentences": split.num_sentences,
             "words": split.num_words, **pipeline_stats(ds)}
    if name in corpus.oov_rates:  # Tokens the vocabulary lacks (<unk>).
      stats["oov_rate"] = round(corpus.oov_rates[name], 6)
    if data.mode == "stream":
      stats["dropped_tokens"] = split.num_tokens - stats["target_tokens"]
    out["splits"][name] = stats
  return out
