"""Shared fixtures: corpora written by the tests, PTB when available.

Everything runs on corpora the tests write: TINY (a few sentences) and
`corpus_dir` (a PTB-format corpus of ~30,000 tokens drawn from a small
grammar). Only tests of PTB's own figures use `ptb_dir`, which skips
without KERASRNN_DATA_DIR.
"""
import os
import random
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {
    "train": ["the cat sat on the mat", "the dog sat", "a cat saw the dog",
              "the mat is red", "a dog is on the mat"],
    "valid": ["the cat is red", "a dog sat on a mat"],
    "test": ["the dog saw a cat", "the red mat"],
}


def write_corpus(directory, splits, pattern="ptb.{}.txt"):
  os.makedirs(directory, exist_ok=True)
  for name, lines in splits.items():
    with open(os.path.join(directory, pattern.format(name)), "w",
              encoding="utf-8") as f:
      f.write("".join(f" {line} \n" for line in lines))
  return str(directory)


@pytest.fixture(scope="session", autouse=True)
def store_cache(tmp_path_factory):
  """The token stores prepared on first use go to a folder of the session."""
  os.environ["KERASRNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_dir(tmp_path):
  """A PTB-format corpus of a few sentences."""
  return write_corpus(tmp_path / "tiny", TINY)


def grammar_sentences(count, seed):
  """`count` sentences of a small random grammar with Zipf-like word counts.

  Learnable (determiner, adjectives, noun, verb, object, optional
  prepositional phrase), with a long tail of rare words so that the held-out
  splits hold words the training split lacks, as in real text.
  """
  rng = random.Random(seed)
  words = {kind: [f"{kind}{i}" for i in range(n)] for kind, n in
           (("noun", 300), ("verb", 120), ("adj", 80), ("prep", 8),
            ("det", 5))}
  weights = {kind: [1 / (rank + 1) for rank in range(len(w))]
             for kind, w in words.items()}

  def pick(kind):
    return rng.choices(words[kind], weights[kind])[0]

  def phrase():
    return ([pick("det")] + [pick("adj") for _ in range(rng.randint(0, 2))]
            + [pick("noun")])

  sentences = []
  for _ in range(count):
    s = phrase() + [pick("verb")] + phrase()
    if rng.random() < 0.4:
      s += [pick("prep")] + phrase()
    sentences.append(" ".join(s))
  return sentences


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
  """A PTB-format corpus of ~30,000 tokens (train 2,400 sentences)."""
  return write_corpus(tmp_path_factory.mktemp("grammar"), {
      "train": grammar_sentences(2_400, seed=1),
      "valid": grammar_sentences(400, seed=2),
      "test": grammar_sentences(400, seed=3)})


@pytest.fixture(scope="session")
def ptb_dir():
  d = os.environ.get("KERASRNN_DATA_DIR")
  if not d or not os.path.exists(os.path.join(d, "ptb.train.txt")):
    pytest.skip("KERASRNN_DATA_DIR does not point at the PTB files")
  return d


def smoke_config(data_dir, variant=None, overrides=None):
  """configs/smoke.py on `data_dir`, with dotted-field overrides."""
  from configs import smoke  # pylint: disable=g-import-not-at-top
  from kerasrnn import config as config_lib  # pylint: disable=g-import-not-at-top
  config = smoke.get_config(variant)
  config.data.dir = data_dir
  return config_lib.override(config, overrides or {})


def score_in_requests(signature, lines, rows=200):
  """An export's `score` of `lines` in requests of `rows` (within its
  max_batch), as a client sends them: {output: the rows' values}."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  parts = [signature(text=tf.constant(lines[i:i + rows]))
           for i in range(0, len(lines), rows)]
  return {k: tf.constant(np.concatenate([p[k].numpy() for p in parts]))
          for k in parts[0]}


def native_bfloat16():
  """Whether this machine multiplies bfloat16 natively (else TensorFlow
  emulates it, or, with oneDNN kept below AVX-512, aborts)."""
  from kerasrnn import fast_path  # pylint: disable=g-import-not-at-top
  return fast_path.native_bfloat16(fast_path.cpu()[1],
                                   fast_path.onednn_isa_cap())


def precisions():
  """The train.precision values this machine can run, for parametrize:
  mixed_bfloat16 skipped where the CPU lacks AVX512_BF16 and AMX."""
  return ["float32", pytest.param("mixed_bfloat16", marks=pytest.mark.skipif(
      not native_bfloat16(), reason="no native bfloat16 on this CPU")),
          "mixed_float16"]


def trained_export(config, tmp_path_factory, name):
  """(workdir, export version dir) of a run of `config` and its export."""
  from kerasrnn.serving import export  # pylint: disable=g-import-not-at-top
  from kerasrnn.training import train  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp("run"))
  train.train_and_evaluate(config, workdir)
  base = str(tmp_path_factory.mktemp("export") / name)
  return workdir, export.export(workdir, base)


def run_tool(tool, *args, stdin=None, env=None, timeout=300, cwd=ROOT):
  """Runs the command-line tool `kerasrnn-<tool>` as a user would (`env`:
  variables to set, or to unset with None)."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
  env = {k: v for k, v in env.items() if v is not None}
  return subprocess.run([sys.executable, "-m", f"kerasrnn.cli.{tool}", *args],
                        input=stdin, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def error_line(result):
  """The one line a tool printed for bad input (asserting it was one line,
  besides log lines)."""
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines()
           if not l.startswith(("WARNING: All log", "INFO:tensorflow:"))
           and not re.match(r"[IWE]\d{4} \d\d:\d\d:\d\d", l)]
  assert "Traceback" not in result.stderr
  assert len(lines) == 1, lines
  return lines[0]


def sentences_of(split):
  """A corpus split's sentences, each an array of its ids."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.split(np.asarray(split.ids, np.int32), split.row_splits[1:-1])
