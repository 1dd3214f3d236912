r"""An export under load and under malformed requests, in one process.

TF Serving runs one SavedModel session for all the requests in flight; this
does the same with `tf.saved_model.load` and client threads:

  python benchmarks/serving_load.py --model=export/ptb_small \
      --threads=16 --requests=10000 --fuzz=1000 --out=docs/serving/load.jsonl

1. Load: a mix of requests (`score` of 1-8 sentences, `next_words`, greedy
   `generate`, seeded `sample`, and streams through `step` whose state each
   request carries on from the stream's previous chunk) is answered one at
   a time first, then all of it by `--threads` threads at once; every
   concurrent answer must equal its one-at-a-time answer (1e-5), with no
   error. It records the process's resident memory after a warm-up and at
   the end, and each signature's p50/p99 latency under load.
2. Fuzz: `--fuzz` malformed requests (invalid UTF-8, over the export's
   limits, wrong shapes and dtypes, ids out of range, states of the wrong
   width, bad sampling settings, mismatched batch sizes, `step` padding
   before a row's end); each must be refused (TensorFlow's
   InvalidArgumentError, or the signature's own input check for shapes and
   dtypes, which TF Serving answers as InvalidArgument too), and the
   export must still answer a good request correctly afterwards.

Prints (and with --out appends) one JSON line with the figures and the CPU.
"""
import collections
import concurrent.futures
import json
import os
import random
import threading
import time

import numpy as np
import tensorflow as tf

WORDS = ("the company said its profit rose in the third quarter as sales of "
         "new cars fell and the market expected a loss for the year").split()


def rss_mb():
  """This process's resident memory (VmRSS), in MB."""
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _sentence(rng, lo=1, hi=30):
  return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _state_specs(loaded):
  inputs = loaded.signatures["step"].structured_input_signature[1]
  return {n: s for n, s in inputs.items() if n.startswith("state_")}


def mixed_requests(loaded, count, seed=0, streams=16, chunk=6):
  """`count` requests: (signature, inputs) pairs; a `step` request is
  (stream, chunk index): its inputs depend on the stream's previous answer
  (the carried state), filled in when it runs."""
  rng = random.Random(seed)
  tokenize = loaded.signatures["tokenize"]
  documents = []
  for _ in range(streams):
    ids = tokenize(text=tf.constant([_sentence(rng, 600, 1200)]))[
        "token_ids"]
    documents.append(ids.numpy()[0])
  chunks = [0] * streams
  requests = []
  while len(requests) < count:
    kind = rng.choice(["score", "next_words", "generate", "sample", "step"])
    if kind in ("score", "next_words"):
      n = rng.randint(1, 8)
      requests.append((kind, {"text": tf.constant(
          [_sentence(rng) for _ in range(n)])}))
    elif kind in ("generate", "sample"):
      n = rng.randint(1, 4)
      inputs = {"prompt": tf.constant([_sentence(rng, 0, 6) for _ in range(n)]),
                "max_tokens": tf.constant([rng.randint(1, 12)] * n),
                "temperature": tf.constant([0.0 if kind == "generate" else 1.0]
                                           * n)}
      if kind == "sample":
        inputs.update(top_k=tf.constant([rng.choice([0, 5, 50])] * n),
                      top_p=tf.constant([rng.choice([1.0, 0.9])] * n),
                      seed=tf.constant([rng.randint(0, 2**31)] * n, tf.int64))
      requests.append((kind, inputs))
    else:
      stream = rng.randrange(streams)
      if (chunks[stream] + 1) * chunk >= len(documents[stream]):
        continue  # This stream is read to its end.
      requests.append(("step", (stream, chunks[stream])))
      chunks[stream] += 1
  return requests, documents, chunk


class Streams:
  """The state each stream carries from one `step` chunk to the next: a
  request waits for the chunk before it (a client streams in order)."""

  def __init__(self, loaded, documents, chunk):
    self.documents, self.chunk = documents, chunk
    self.specs = _state_specs(loaded)
    self.states = {i: {n: tf.zeros([1] + [0 if d is None else d
                                         for d in s.shape[1:]], s.dtype)
                       for n, s in self.specs.items()}
                   for i in range(len(documents))}
    self.done = collections.defaultdict(int)
    self.ready = threading.Condition()

  def inputs(self, stream, index):
    with self.ready:
      self.ready.wait_for(lambda: self.done[stream] == index)
      state = self.states[stream]
    ids = self.documents[stream]
    window = ids[index * self.chunk:(index + 1) * self.chunk + 1]
    return {"token_ids": tf.constant([window[:-1]]),
            "targets": tf.constant([window[1:]]), **state}

  def advance(self, stream, out):
    with self.ready:
      self.states[stream] = {n: out[n] for n in self.specs}
      self.done[stream] += 1
      self.ready.notify_all()


def _numpy(out):
  return {k: v.numpy() for k, v in out.items()}


def answer_all(loaded, requests, documents, chunk, threads):
  """Each request's answer and latency (s), the requests run by `threads`
  threads (1: one at a time, in order)."""
  streams = Streams(loaded, documents, chunk)
  signatures = {name: loaded.signatures[name] for name in
                ("score", "next_words", "generate", "sample", "step")}

  def run(i):
    kind, inputs = requests[i]
    if kind == "step":
      stream, index = inputs
      inputs = streams.inputs(stream, index)
    start = time.perf_counter()
    out = signatures[kind](**inputs)
    seconds = time.perf_counter() - start
    if kind == "step":
      streams.advance(stream, out)
    return _numpy(out), seconds

  if threads == 1:
    return [run(i) for i in range(len(requests))]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    return list(pool.map(run, range(len(requests))))


def _same(a, b):
  for key, value in a.items():
    if value.dtype.kind == "f":
      if not np.allclose(value, b[key], rtol=1e-5, atol=1e-6):
        return False
    elif not np.array_equal(value, b[key]):
      return False
  return True


def load_test(loaded, requests, threads):
  """Figures of the load test (see the module's docstring)."""
  requests, documents, chunk = requests
  # Warm-up: every signature traced and its memory allocated once.
  answer_all(loaded, requests[:200], documents, chunk, threads)
  expected = answer_all(loaded, requests, documents, chunk, 1)
  before = rss_mb()
  start = time.perf_counter()
  answers = answer_all(loaded, requests, documents, chunk, threads)
  seconds = time.perf_counter() - start
  after = rss_mb()
  mismatches = sum(not _same(got, want) for (got, _), (want, _) in
                   zip(answers, expected))
  latency = collections.defaultdict(list)
  for (kind, _), (_, s) in zip(requests, answers):
    latency[kind].append(1000 * s)
  return {
      "requests": len(requests), "threads": threads, "errors": 0,
      "mismatches": mismatches, "seconds": round(seconds, 1),
      "requests_per_second": round(len(requests) / seconds, 1),
      "rss_mb_after_warmup": round(before, 1), "rss_mb_at_end": round(after, 1),
      "rss_growth": round(after / before - 1, 4),
      "latency_ms": {k: {"count": len(v),
                         "p50": round(float(np.percentile(v, 50)), 2),
                         "p99": round(float(np.percentile(v, 99)), 2)}
                     for k, v in sorted(latency.items())}}


def malformed_requests(loaded, count, seed=0):
  """`count` (class, signature, inputs) requests each of which must be
  refused; the classes take turns."""
  rng = random.Random(seed)
  card = json.loads(loaded.signatures["metadata"]()["model_card"].numpy())
  limits, vocab = card["limits"], card["vocab_size"]
  specs = _state_specs(loaded)
  width = {n: s.shape[-1] for n, s in specs.items()}

  def states(rows, wrong=None):
    return {n: tf.zeros([rows, width[n] + (1 if n == wrong else 0)])
            for n in specs}

  def invalid_utf8():
    raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
    return raw[:rng.randint(0, len(raw))] + b"\xff" + raw

  def ids(rows, time, lo, hi):
    return tf.constant(np.random.default_rng(rng.randrange(2**31)).integers(
        lo, hi, (rows, time)), tf.int32)

  def generate_args(rows, **override):
    args = {"prompt": tf.constant(["the"] * rows),
            "max_tokens": tf.constant([3] * rows),
            "temperature": tf.constant([1.0] * rows),
            "top_k": tf.constant([0] * rows), "top_p": tf.constant([1.0] * rows),
            "seed": tf.constant([1] * rows, tf.int64)}
    args.update(override)
    return args

  makers = [
      ("invalid_utf8", lambda: ("score", {"text": tf.constant(
          [invalid_utf8(), b"the market"])})),
      ("invalid_utf8", lambda: ("tokenize", {"text": tf.constant(
          [invalid_utf8()])})),
      ("over_max_batch", lambda: ("score", {"text": tf.constant(
          ["a"] * (limits["max_batch"] + rng.randint(1, 5)))})),
      ("over_max_request_tokens", lambda: ("next_words", {"text": tf.constant(
          ["the " * (limits["max_request_tokens"] + rng.randint(0, 10))])})),
      ("over_max_generate_tokens", lambda: ("sample", generate_args(
          1, max_tokens=tf.constant([limits["max_generate_tokens"]
                                     + rng.randint(1, 100)])))),
      ("wrong_shape", lambda: ("score", {"text": tf.constant(
          [["a", "b"], ["c", "d"]])})),
      ("wrong_shape", lambda: ("log_probs", {"token_ids": tf.constant(
          [2, 5, 7])})),
      ("wrong_dtype", lambda: ("log_probs", {"token_ids": tf.constant(
          [[2.0, 5.0]])})),
      ("wrong_dtype", lambda: ("generate", {
          "prompt": tf.constant(["a"]), "max_tokens": tf.constant([2.5]),
          "temperature": tf.constant([1.0])})),
      ("ids_out_of_range", lambda: ("log_probs", {"token_ids": ids(
          2, 4, vocab, vocab + 100)})),
      ("ids_out_of_range", lambda: ("step", {
          "token_ids": ids(1, 3, -50, 0), "targets": ids(1, 3, 1, 2),
          **states(1)})),
      ("state_of_wrong_width", lambda: ("step", {
          "token_ids": ids(2, 3, 1, vocab), "targets": ids(2, 3, 1, vocab),
          **states(2, wrong=rng.choice(list(specs)))})),
      ("bad_sampling", lambda: ("sample", generate_args(
          2, top_k=tf.constant([-rng.randint(1, 9)] * 2)))),
      ("bad_sampling", lambda: ("sample", generate_args(
          1, top_p=tf.constant([rng.choice([0.0, -1.0, 1.5])])))),
      ("bad_sampling", lambda: ("generate", {
          "prompt": tf.constant(["a"]), "max_tokens": tf.constant([2]),
          "temperature": tf.constant([-rng.random() - 0.1])})),
      ("batch_mismatch", lambda: ("generate", {
          "prompt": tf.constant(["a", "b"]), "max_tokens": tf.constant([2]),
          "temperature": tf.constant([1.0, 1.0])})),
      ("step_padding_before_end", lambda: ("step", {
          "token_ids": tf.constant([[2, 0, 5]]), "targets": tf.constant(
              [[5, 0, 6]]), **states(1)})),
  ]
  out = []
  for i in range(count):
    name, make = makers[i % len(makers)]
    out.append((name,) + make())
  return out


def fuzz_test(loaded, requests, check):
  """Sends each malformed request; counts refusals by class. `check` is a
  good (signature, inputs, expected answer) sent after every 100 and at the
  end: the export must still answer it, the same."""
  refused = collections.Counter()
  answered = collections.Counter()
  good_kind, good_inputs, good_answer = check
  checks = 0
  for i, (name, kind, inputs) in enumerate(requests):
    try:
      loaded.signatures[kind](**inputs)
      answered[name] += 1
    except tf.errors.InvalidArgumentError:
      refused[name] += 1
    except (TypeError, ValueError):  # The signature's input specs.
      refused[name] += 1
    if i % 100 == 99 or i == len(requests) - 1:
      again = _numpy(loaded.signatures[good_kind](**good_inputs))
      assert _same(again, good_answer), "a good request's answer changed"
      checks += 1
  return {"malformed": len(requests), "refused": sum(refused.values()),
          "answered": sum(answered.values()), "good_requests_after": checks,
          "refused_by_class": dict(sorted(refused.items())),
          "answered_by_class": dict(sorted(answered.items()))}


def main():
  import argparse  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from machine import machine  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser()
  p.add_argument("--model", required=True)
  p.add_argument("--threads", type=int, default=16)
  p.add_argument("--requests", type=int, default=10_000)
  p.add_argument("--fuzz", type=int, default=1_000)
  p.add_argument("--out")
  a = p.parse_args()
  from kerasrnn.serving import saved_model  # pylint: disable=g-import-not-at-top
  loaded = saved_model.load(a.model)
  result = {"model": a.model, "tensorflow": tf.__version__, **machine()}
  result["load"] = load_test(loaded, mixed_requests(loaded, a.requests),
                             a.threads)
  good = {"text": tf.constant(["the market fell", "a"])}
  result["fuzz"] = fuzz_test(loaded, malformed_requests(loaded, a.fuzz),
                             ("score", good,
                              _numpy(loaded.signatures["score"](**good))))
  result["rss_mb_after_fuzz"] = round(rss_mb(), 1)
  line = json.dumps(result)
  print(line)
  if a.out:
    with open(a.out, "a", encoding="utf-8") as f:
      f.write(line + "\n")


if __name__ == "__main__":
  main()
