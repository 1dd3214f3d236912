"""A streaming client of a kerasrnn export: TensorFlow (and its absl), no
kerasrnn.

The `step` signature takes the decoder state in (an LSTM/GRU's recurrent
state, a Transformer's key/value cache) and gives the new state
out, so a client sends each chunk once instead of the whole history:

  python export/stream_client.py --model=export/ptb_small/1 \
      --document=ptb.test.txt --chunk=200          # score a long document
  python export/stream_client.py --model=export/ptb_small/1 \
      --prompt="the company said" --max_tokens=20  # generate token by token

Scoring reads the document as one token stream (each line's words, then
<eos>, tokenised by the export's own `tokenize` signature: the model's
tokeniser, lowercasing and vocabulary), as
`kerasrnn-evaluate --mode=stream --batch_size=1` does, and prints the
perplexity. Generation feeds one token per call and samples the next
word from `next_log_probs`. The same requests work against TF Serving: every
input and output is a named, batch-major tensor (export/README.md).
"""
import json
import math
import os

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

EOS_ID = 2  # Line 3 of assets/vocab.txt.


def load(path):
  model = tf.saved_model.load(path)
  with open(os.path.join(path, "assets", "vocab.txt"), encoding="utf-8") as f:
    words = f.read().splitlines()
  return model.signatures["step"], model.signatures["tokenize"], words


def token_ids(tokenize, lines):
  """Each line's ids, then <eos>, as the model tokenises them (one list)."""
  out = tokenize(text=tf.constant(lines))
  return [i for row, n in zip(out["token_ids"].numpy().tolist(),
                              out["num_tokens"].numpy().tolist())
          for i in row[:n]]


def zero_state(step, batch):
  """The start of a stream: zeros, and no positions in a Transformer's
  key/value cache (each unknown dimension but the batch is 0)."""
  return {name: tf.zeros([batch] + [d or 0 for d in spec.shape[1:]],
                         spec.dtype)
          for name, spec in step.structured_input_signature[1].items()
          if name.startswith("state_")}


def call(step, token_ids, targets, state):
  out = step(token_ids=tf.constant([token_ids], tf.int32),
             targets=tf.constant([targets], tf.int32), **state)
  return out, {name: out[name] for name in state}


def score(step, tokenize, document, chunk):
  """Perplexity of a file read as one stream, chunk by chunk."""
  with open(document, encoding="utf-8") as f:
    lines = [line for line in f if line.strip()]
  stream = []
  # 200 lines per request: within an export's max_batch (256 by default).
  for start in range(0, len(lines), 200):
    stream += token_ids(tokenize, lines[start:start + 200])
  inputs = [EOS_ID] + stream[:-1]  # Each token is read after the one before.
  state, log_likelihood, tokens = zero_state(step, 1), 0.0, 0
  for start in range(0, len(stream), chunk):
    out, state = call(step, inputs[start:start + chunk],
                      stream[start:start + chunk], state)
    log_likelihood += float(out["log_likelihood"][0])
    tokens += int(out["num_tokens"][0])
  return {"tokens": tokens, "perplexity": math.exp(-log_likelihood / tokens)}


def generate(step, tokenize, words, prompt, max_tokens, temperature, seed=0):
  """Samples up to `max_tokens` words after `prompt`, one call per token."""
  rng = np.random.default_rng(seed)
  tokens = [EOS_ID] + token_ids(tokenize, [prompt])[:-1]  # Without its <eos>.
  out, state = call(step, tokens, [0] * len(tokens), zero_state(step, 1))
  generated = []
  for _ in range(max_tokens):
    log_probs = out["next_log_probs"][0].numpy()
    if temperature <= 0:
      token = int(np.argmax(log_probs))
    else:
      p = np.exp((log_probs - log_probs.max()) / temperature)
      token = int(rng.choice(len(p), p=p / p.sum()))
    if token == EOS_ID:
      break
    generated.append(words[token])
    out, state = call(step, [token], [0], state)
  return " ".join(generated)


_MODEL = flags.DEFINE_string("model", None, "A SavedModel version dir.")
_DOCUMENT = flags.DEFINE_string("document", None,
                                "Text file to score as one stream.")
_CHUNK = flags.DEFINE_integer("chunk", 200, "Tokens per `step` call.")
_PROMPT = flags.DEFINE_string("prompt", "the", "Generation's prompt.")
_MAX_TOKENS = flags.DEFINE_integer("max_tokens", 20, "Words to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "0 = greedy.")
flags.mark_flag_as_required("model")


def main(argv):
  del argv
  step, tokenize, words = load(_MODEL.value)
  if _DOCUMENT.value:
    print(json.dumps(score(step, tokenize, _DOCUMENT.value, _CHUNK.value)))
  else:
    print(json.dumps({"text": generate(step, tokenize, words, _PROMPT.value,
                                       _MAX_TOKENS.value, _TEMPERATURE.value)}))


if __name__ == "__main__":
  app.run(main)
