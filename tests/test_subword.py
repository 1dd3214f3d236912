"""SentencePiece subword models: the store, per-word perplexity, the export."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from conftest import grammar_sentences
from conftest import run_tool
from conftest import score_in_requests
from conftest import smoke_config
from conftest import trained_export
from conftest import write_corpus
from kerasrnn import workdir as wd
from kerasrnn.data import store
from kerasrnn.data import subword
from kerasrnn.data import text
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.serving import export
from kerasrnn.training import evaluation
from test_serving import lines_of_test_split
from test_serving import stream_test_split

PIECES = 330  # What the grammar corpus's text allows (SentencePiece says so).
# Held-out lines with what training never saw: non-ASCII letters, other
# scripts, unknown words, and the corpus's own <unk>.
NEW = ["det adj naïve café noun0", "日本語 テキスト verb3", "Zebra <unk> QUUX"]


@pytest.fixture(scope="module")
def subword_dir(tmp_path_factory):
  return write_corpus(tmp_path_factory.mktemp("subword"), {
      "train": grammar_sentences(2_400, seed=1) + ["the <unk> sat"],
      "valid": grammar_sentences(300, seed=2) + NEW,
      "test": NEW + grammar_sentences(300, seed=3)})


def _config(directory, *variant, **overrides):
  return smoke_config(directory, *variant, overrides={
      "data.tokenizer": "sentencepiece", "data.max_vocab_size": PIECES,
      "data.max_tokens": 0, **overrides})


def _raw_lines(directory, split):
  with open(os.path.join(directory, f"ptb.{split}.txt"),
            encoding="utf-8") as f:
    return [l.strip() for l in f if l.strip()]


@pytest.fixture(scope="module")
def prepared(subword_dir, tmp_path_factory):
  """(config, store directory, corpus) of a store that trained its model."""
  config = _config(subword_dir)
  directory = str(tmp_path_factory.mktemp("stores") / "subword")
  store.prepare(config.data, directory)
  config.data.store = directory
  return config, directory, load_corpus(config.data)


def test_every_piece_is_in_the_vocabulary_and_nothing_is_unknown(prepared,
                                                                 subword_dir):
  config, directory, corpus = prepared
  model = open(os.path.join(directory, subword.MODEL_FILE), "rb").read()
  pieces = subword.pieces(model)
  # Less its <pad>, <eos> (control pieces) and unknown piece.
  assert len(pieces) == PIECES - 3 and "<unk>" in pieces
  assert len(corpus.vocab) == PIECES - 1  # Its "<unk>" is kerasrnn's.
  # <pad>, <unk> (the model's own piece "<unk>"), <eos>, then the pieces.
  assert corpus.vocab.words[:3] == list(text.RESERVED)
  assert set(corpus.vocab.words[3:]) == set(pieces) - set(text.RESERVED)
  manifest = store.read_manifest(directory)
  for split in ("valid", "test"):
    assert manifest["splits"][split]["oov_words"] == 0  # Bytes fall back.
    assert manifest["splits"][split]["unk_words"] == 1  # The literal one.
    ids = np.asarray(corpus.splits[split].ids)
    assert np.sum(ids == text.UNK_ID) == 1
    # Words: each line's whitespace words + 1, whatever the pieces.
    lines = _raw_lines(subword_dir, split)
    assert corpus.splits[split].num_words == sum(
        len(l.split()) + 1 for l in lines)
    assert corpus.splits[split].num_tokens > corpus.splits[split].num_words


def test_the_store_pieces_are_what_tensorflow_text_cuts(prepared,
                                                        subword_dir):
  config, directory, corpus = prepared
  model = open(os.path.join(directory, subword.MODEL_FILE), "rb").read()
  lines = _raw_lines(subword_dir, "test")
  pieces = subword.tokenizer(model).tokenize(lines).to_list()
  expected = np.concatenate([np.append(corpus.vocab.encode(
      [p.decode("utf-8") for p in line]), text.EOS_ID) for line in pieces])
  np.testing.assert_array_equal(corpus.splits["test"].ids, expected)
  # And the sentencepiece package agrees on the non-ASCII lines.
  import sentencepiece  # pylint: disable=g-import-not-at-top
  reference = sentencepiece.SentencePieceProcessor(model_proto=model)
  assert [[p.decode() for p in line] for line in pieces[:3]] == (
      reference.encode(NEW, out_type=str))


def test_a_given_model_is_identified_by_its_content(prepared, subword_dir,
                                                    tmp_path):
  _, directory, corpus = prepared
  copy = shutil.copy(os.path.join(directory, subword.MODEL_FILE),
                     tmp_path / "mine.model")
  given = _config(subword_dir, **{"data.sentencepiece_model": str(copy),
                                  "data.max_vocab_size": 0})
  settings = store.settings(given.data)
  assert settings["sentencepiece_model"] == subword.digest(
      open(copy, "rb").read())
  assert "max_vocab_size" not in settings and "min_count" not in settings
  mine = load_corpus(given.data)  # Prepared in the cache from the copy.
  np.testing.assert_array_equal(mine.splits["test"].ids,
                                corpus.splits["test"].ids)
  moved = shutil.move(copy, tmp_path / "moved.model")
  given.data.sentencepiece_model = str(moved)
  assert store.store_dir(given.data) == store.store_dir(
      _config(subword_dir, **{"data.sentencepiece_model": str(moved)}).data)
  (tmp_path / "not.model").write_text("not a model")
  given.data.sentencepiece_model = str(tmp_path / "not.model")
  with pytest.raises(UserError, match="not.model is not a SentencePiece "
                     "model"):
    load_corpus(given.data)


def test_the_trained_model_is_the_same_every_time(prepared, subword_dir,
                                                  tmp_path):
  """A cached store prepared again (deleted, another machine) gives the
  same pieces and ids, so data.json lets the run resume on it."""
  _, directory, corpus = prepared
  again = str(tmp_path / "again")
  store.prepare(_config(subword_dir).data, again)
  assert store.read_manifest(again)["fingerprint"] == corpus.fingerprint
  for name in (subword.MODEL_FILE, "vocab.txt"):
    assert open(os.path.join(again, name), "rb").read() == open(
        os.path.join(directory, name), "rb").read()


def test_too_many_pieces_is_one_line(subword_dir, tmp_path):
  config = _config(subword_dir, **{"data.max_vocab_size": 5_000})
  with pytest.raises(UserError, match=r"could not train a model of "
                     r"data.max_vocab_size=5000 pieces .*<= \d+"):
    store.prepare(config.data, str(tmp_path / "store"))


@pytest.mark.parametrize("package", ["tensorflow_text", "sentencepiece"])
def test_a_missing_extra_is_one_line(subword_dir, tmp_path, monkeypatch,
                                     package):
  monkeypatch.setitem(sys.modules, package, None)  # Import fails.
  with pytest.raises(UserError, match=r'pip install "kerasrnn\[subword\]"'):
    store.prepare(_config(subword_dir).data, str(tmp_path / "store"))


@pytest.fixture(scope="module")
def run(subword_dir, tmp_path_factory):
  """A sentence-mode smoke run on pieces, and its export."""
  return trained_export(_config(subword_dir, "sentence"), tmp_path_factory,
                        "subword")


@pytest.fixture(scope="module")
def loaded(run):
  return tf.saved_model.load(run[1])


@pytest.mark.slow
def test_results_give_the_perplexity_per_word(run):
  workdir, _ = run
  results = wd.read_json(workdir, "results.json")
  corpus = load_corpus(wd.load_config(workdir).data, wd.load_vocab(workdir))
  test = corpus.splits["test"]
  assert results["test_tokens"] == test.num_tokens  # Sentence mode: all.
  # The same total log-likelihood over the words instead of the tokens.
  assert np.log(results["test_word_perplexity"]) * test.num_words == (
      pytest.approx(np.log(results["test_perplexity"]) * test.num_tokens,
                    rel=1e-12))
  assert results["test_word_perplexity"] > results["test_perplexity"]
  assert results["test_oov_rate"] == results["valid_oov_rate"] == 0
  rows = wd.read_history(workdir)
  assert all(r["val_word_perplexity"] > r["val_perplexity"] for r in rows)
  assert os.path.exists(wd.path(workdir, subword.MODEL_FILE))


@pytest.mark.slow
def test_an_export_without_the_model_file_is_one_line(run, tmp_path):
  copy = shutil.copytree(run[0], tmp_path / "run")
  os.remove(copy / subword.MODEL_FILE)
  with pytest.raises(UserError, match="has no sentencepiece.model .*copy it "
                     "back from the run's token store"):
    export.export(str(copy), str(tmp_path / "export"))


@pytest.mark.slow
def test_export_tokenize_is_the_stores_pieces(run, loaded):
  workdir, _ = run
  config = wd.load_config(workdir)
  split = load_corpus(config.data, wd.load_vocab(workdir)).splits["test"]
  lines = lines_of_test_split(workdir)
  ids = []
  for start in range(0, len(lines), 200):  # Within the export's max_batch.
    out = loaded.signatures["tokenize"](
        text=tf.constant(lines[start:start + 200]))
    ids += [row[:n] for row, n in zip(out["token_ids"].numpy(),
                                      out["num_tokens"].numpy())]
  np.testing.assert_array_equal(np.concatenate(ids), split.ids)


@pytest.mark.slow
def test_export_score_equals_sentence_evaluation_per_token_and_per_word(
    run, loaded):
  workdir, _ = run
  lines = lines_of_test_split(workdir)
  scored = score_in_requests(loaded.signatures["score"], lines)
  log_likelihood = float(tf.reduce_sum(scored["log_likelihood"]))
  expected = evaluation.evaluate(workdir, "test", mode="sentence")
  assert int(tf.reduce_sum(scored["num_tokens"])) == expected["target_tokens"]
  assert int(tf.reduce_sum(scored["num_words"])) == expected["words"]
  assert np.exp(-log_likelihood / expected["target_tokens"]) == (
      pytest.approx(expected["perplexity"], rel=1e-5))
  assert np.exp(-log_likelihood / expected["words"]) == pytest.approx(
      expected["word_perplexity"], rel=1e-5)
  per_line = scored["word_perplexity"].numpy()
  np.testing.assert_allclose(per_line, np.exp(
      -scored["log_likelihood"].numpy() / scored["num_words"].numpy()),
                             rtol=1e-6)


@pytest.mark.slow
def test_score_tool_gives_the_perplexity_per_word(run, tmp_path):
  workdir, path = run
  lines = tmp_path / "test.txt"
  lines.write_text("\n".join(lines_of_test_split(workdir)) + "\n",
                   encoding="utf-8")
  scored = run_tool("score", f"--model={path}", f"--input={lines}",
                    "--total_only")
  assert scored.returncode == 0, scored.stderr[-2000:]
  total = json.loads(scored.stdout.strip().splitlines()[-1])
  expected = evaluation.evaluate(workdir, "test", mode="sentence")
  assert total["num_words"] == expected["words"]
  assert total["word_perplexity"] == pytest.approx(
      expected["word_perplexity"], rel=1e-5)


@pytest.mark.slow
def test_step_streaming_equals_stream_evaluation(run, loaded):
  workdir, _ = run
  log_likelihood, tokens, _ = stream_test_split(
      workdir, loaded.signatures["step"], 29)
  expected = evaluation.evaluate(workdir, "test", batch_size=1, mode="stream")
  assert tokens == expected["target_tokens"]
  assert np.exp(-log_likelihood / tokens) == pytest.approx(
      expected["perplexity"], rel=1e-5)


@pytest.mark.slow
def test_generated_text_is_text_that_tokenize_reads_back(run, loaded):
  workdir, _ = run
  vocab = wd.load_vocab(workdir)
  prompts = ["det adj", "naïve", "日本語", ""] * 4
  tf.random.set_seed(0)
  out = loaded.signatures["generate"](
      prompt=tf.constant(prompts), max_tokens=tf.constant([12] * 16),
      temperature=tf.constant([1.0] * 12 + [0.0] * 4))
  generated = [t.decode("utf-8") for t in out["text"].numpy()]
  assert any(generated) and not any("\u2581" in t for t in generated)
  whole = [p + t for p, t in zip(prompts, generated)]
  tokens = loaded.signatures["tokenize"](text=tf.constant(whole))
  import sentencepiece  # pylint: disable=g-import-not-at-top
  reference = sentencepiece.SentencePieceProcessor(
      model_file=wd.path(workdir, subword.MODEL_FILE))
  for row, n, original in zip(tokens["token_ids"].numpy(),
                              tokens["num_tokens"].numpy(), whole):
    pieces = vocab.decode(row[:n - 1])  # Without <eos>.
    # The export reads its own text back as SentencePiece cuts it, and the
    # pieces give back the text (sampled bytes that are no UTF-8 character
    # come out as U+FFFD, as SentencePiece's decoder writes them).
    assert pieces == reference.encode(original, out_type=str)
    assert reference.decode_pieces(pieces) == reference.decode(
        reference.encode(original))


_TF1 = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # Registers SentencePiece's ops, as TF Serving links them.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
      meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], sys.argv[1])
      out = {}
      for name, inputs in (("score", {"text": ["det adj naïve noun0", ""]}),
                           ("tokenize", {"text": ["日本語 verb3"]}),
                           ("generate", {"prompt": ["det", "noun"],
                                         "max_tokens": [5, 5],
                                         "temperature": [0.0, 0.0]})):
        signature = meta.signature_def[name]
        got = session.run(
            {k: v.name for k, v in signature.outputs.items()},
            {signature.inputs[k].name: np.array(v) for k, v in inputs.items()})
        out[name] = {k: v.tolist() if v.dtype != object else
                     [x.decode() for x in v] for k, v in got.items()}
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_a_tf1_session_runs_the_subword_export_as_tf_serving_does(
    run, loaded, tmp_path):
  out = subprocess.run([sys.executable, "-c", _TF1, run[1]],
                       capture_output=True, text=True, timeout=300,
                       cwd=str(tmp_path), check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  got = json.loads(out.stdout.strip().splitlines()[-1])
  score = loaded.signatures["score"](text=tf.constant(
      ["det adj naïve noun0", ""]))
  np.testing.assert_allclose(got["score"]["log_likelihood"],
                             score["log_likelihood"].numpy(), rtol=1e-5)
  assert got["score"]["num_words"] == [5, 1]
  assert got["tokenize"]["token_ids"] == loaded.signatures["tokenize"](
      text=tf.constant(["日本語 verb3"]))["token_ids"].numpy().tolist()
  greedy = loaded.signatures["generate"](
      prompt=tf.constant(["det", "noun"]), max_tokens=tf.constant([5, 5]),
      temperature=tf.constant([0.0, 0.0]))
  assert got["generate"]["text"] == [t.decode() for t in
                                     greedy["text"].numpy()]
