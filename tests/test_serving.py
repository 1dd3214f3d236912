"""The SavedModel export: signatures, bad requests, versions, warm-up."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import error_line
from conftest import grammar_sentences
from conftest import native_bfloat16
from conftest import ROOT
from conftest import run_tool
from conftest import score_in_requests
from conftest import smoke_config
from conftest import trained_export
from conftest import write_corpus
from kerasrnn import fast_path
from kerasrnn import workdir as wd
from kerasrnn.data import pipelines
from kerasrnn.data import text
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.serving import export
from kerasrnn.training import evaluation
from kerasrnn.training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_dir):
  """A smoke run in sentence mode, with one export."""
  return trained_export(smoke_config(corpus_dir, "sentence"),
                        tmp_path_factory, "smoke")


@pytest.fixture(scope="module")
def loaded(run):
  return tf.saved_model.load(run[1])


def lines_of_test_split(workdir):
  """The raw lines of the test sentences the run evaluates on."""
  config = wd.load_config(workdir)
  n = load_corpus(config.data, wd.load_vocab(workdir)).splits["test"].num_sentences
  with open(os.path.join(config.data.dir, "ptb.test.txt")) as f:
    return [l.strip() for l in f if l.strip()][:n]


_FRESH = textwrap.dedent("""
    import json, sys
    sys.modules["kerasrnn"] = None  # Make sure nothing of kerasrnn is used.
    try:
      import kerasrnn
      raise SystemExit("kerasrnn importable")
    except ImportError:
      pass
    import tensorflow as tf
    m = tf.saved_model.load(sys.argv[1])
    lines = json.load(open(sys.argv[2]))
    # In requests of 200 (the export's max_batch is 256).
    s = [m.signatures["score"](text=tf.constant(lines[i:i + 200]))
         for i in range(0, len(lines), 200)]
    s = {k: tf.concat([part[k] for part in s], 0) for k in s[0]}
    n = m.signatures["next_words"](text=tf.constant(lines[:2]))
    g = m.signatures["generate"](prompt=tf.constant(lines[:2]),
                                 max_tokens=tf.constant([3, 3]),
                                 temperature=tf.constant([1.0, 0.0]))
    p = m.signatures["log_probs"](token_ids=tf.constant([[2, 5, 0]]))
    print(json.dumps({
        "ll": float(tf.reduce_sum(s["log_likelihood"])),
        "tokens": int(tf.reduce_sum(s["num_tokens"])),
        "next": n["words"].shape.as_list(),
        "generated": g["num_tokens"].numpy().tolist(),
        "log_probs": p["log_probs"].shape.as_list()}))
""")


def test_fresh_process_without_kerasrnn_agrees_with_evaluate(run, tmp_path):
  workdir, path = run
  lines = lines_of_test_split(workdir)
  (tmp_path / "lines.json").write_text(json.dumps(lines))
  out = subprocess.run([sys.executable, "-c", _FRESH, path,
                        str(tmp_path / "lines.json")], capture_output=True,
                       text=True, timeout=300, cwd=str(tmp_path), check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  got = json.loads(out.stdout.strip().splitlines()[-1])
  vocab_size = len(wd.load_vocab(workdir))
  assert got["next"] == [2, 10] and got["log_probs"] == [1, 3, vocab_size]
  assert all(0 <= n <= 3 for n in got["generated"])
  expected = evaluation.evaluate(workdir, "test", batch_size=16,
                                 mode="sentence")
  assert got["tokens"] == expected["target_tokens"]
  assert np.exp(-got["ll"] / got["tokens"]) == pytest.approx(
      expected["perplexity"], rel=1e-4)


def test_in_graph_preprocessing_matches_the_corpus_reader(run, loaded):
  workdir, _ = run
  vocab = wd.load_vocab(workdir)
  raw = ["  the  <unk> company 's zzzunknown N  ", "<pad> stocks"]
  ids = [vocab.encode(t) for t in
         text.tokenize(raw).to_list() for t in [[w.decode() for w in t]]]
  inputs = tf.ragged.constant([[text.EOS_ID] + list(i) for i in ids])
  targets = [list(i) + [text.EOS_ID] for i in ids]
  log_probs = loaded.signatures["log_probs"](
      token_ids=inputs.to_tensor())["log_probs"].numpy()
  expected = [sum(log_probs[r, t, w] for t, w in enumerate(row))
              for r, row in enumerate(targets)]
  score = loaded.signatures["score"](text=tf.constant(raw))
  np.testing.assert_allclose(score["log_likelihood"].numpy(), expected,
                             rtol=1e-5)
  assert score["num_tokens"].numpy().tolist() == [len(t) for t in targets]


def test_no_cudnn_ops_in_the_graph(run):
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(run[1], "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  graph = proto.meta_graphs[0].graph_def
  ops = {n.op for n in graph.node}
  ops |= {n.op for fn in graph.library.function for n in fn.node_def}
  assert "StatefulPartitionedCall" in ops and "LookupTableFindV2" in ops
  assert "BlockLSTMV2" in ops  # The smoke LSTM's fused op (serving.module).
  assert not [op for op in ops if "Cudnn" in op or "CuDNN" in op]


def test_a_tf1_session_runs_the_signatures_as_tf_serving_does(run, loaded):
  """TF Serving loads the graph into a TF1 session (variables restored from
  the checkpoint, the vocabulary table initialised from the asset) and runs
  a signature by its tensor names: the same numbers as the TF2 loader."""
  text_in = ["the cat sat on the mat", "zebra", ""]
  states = {name: np.zeros([2, spec.shape[1]], np.float32) for name, spec in
            loaded.signatures["step"].structured_input_signature[1].items()
            if name.startswith("state_")}
  requests = {
      "score": {"text": np.array(text_in, object)},
      "next_words": {"text": np.array(text_in, object)},
      "step": {"token_ids": np.array([[2, 5, 7], [2, 6, 0]], np.int32),
               "targets": np.array([[5, 7, 0], [6, 0, 0]], np.int32),
               **states}}
  wants = {name: {k: v.numpy() for k, v in loaded.signatures[name](
      **{k: tf.constant(v) for k, v in inputs.items()}).items()}
           for name, inputs in requests.items()}
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], run[1])
    for name, inputs in requests.items():
      signature = meta.signature_def[name]
      fetches = {k: v.name for k, v in signature.outputs.items()}
      got = session.run(fetches, {signature.inputs[k].name: v
                                  for k, v in inputs.items()})
      want = wants[name]
      assert set(got) == set(want)
      for key, value in got.items():
        if value.dtype == object:
          assert value.tolist() == want[key].tolist()
        else:
          np.testing.assert_allclose(value, want[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("request_text", [
    "", "zzz qqq xxx", " ".join(["the"] * 10_000), "café über straße 東京 🚀",
])
def test_odd_score_requests_give_finite_results(loaded, request_text):
  out = loaded.signatures["score"](text=tf.constant([request_text, "the"]))
  n_words = len(request_text.split())
  assert out["num_tokens"].numpy().tolist() == [n_words + 1, 2]
  assert np.isfinite(out["perplexity"].numpy()).all()


@pytest.mark.parametrize("max_tokens,expected_max", [
    (0, 0), (-5, 0), (3, 3), (200, 200)])
def test_generate_caps_max_tokens(loaded, max_tokens, expected_max):
  out = loaded.signatures["generate"](
      prompt=tf.constant(["the", ""]), max_tokens=tf.constant([max_tokens] * 2),
      temperature=tf.constant([1.0, 0.0]))
  counts = out["num_tokens"].numpy()
  assert ((0 <= counts) & (counts <= expected_max)).all()
  words = [len(t.split()) for t in out["text"].numpy().astype(str)]
  assert words == counts.tolist()


def test_generate_over_the_exports_limit_is_invalid_argument(loaded):
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="max_generate_tokens=200"):
    loaded.signatures["generate"](prompt=tf.constant(["the"]),
                                  max_tokens=tf.constant([201]),
                                  temperature=tf.constant([1.0]))


def test_greedy_generation_is_deterministic(loaded):
  args = dict(prompt=tf.constant(["the company"] * 2),
              max_tokens=tf.constant([8, 8]), temperature=tf.constant([0.0, 0.0]))
  first = loaded.signatures["generate"](**args)["text"].numpy()
  assert first[0] == first[1]
  assert (loaded.signatures["generate"](**args)["text"].numpy() == first).all()


def test_negative_temperature_is_invalid_argument(loaded):
  with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
    loaded.signatures["generate"](prompt=tf.constant(["a"]),
                                  max_tokens=tf.constant([3]),
                                  temperature=tf.constant([-1.0]))


def test_generation_stops_at_eos(run):
  module = export.load_module(run[0])
  bias = module.model.get_layer("logits").bias
  favour = lambda word_id: bias.assign(
      np.where(np.arange(bias.shape[0]) == word_id, 1e4, 0).astype("float32"))
  args = (tf.constant(["the", "a b"]), tf.constant([7, 4]),
          tf.constant([0.0, 1.0]))
  favour(text.EOS_ID)
  out = module.generate(*args)
  assert out["num_tokens"].numpy().tolist() == [0, 0]
  assert out["text"].numpy().tolist() == [b"", b""]
  favour(5)
  out = module.generate(*args)
  assert out["num_tokens"].numpy().tolist() == [7, 4]
  word = module.words[5].numpy()
  assert out["text"].numpy()[1] == b" ".join([word] * 4)


def test_exports_get_new_versions_and_never_overwrite(run):
  workdir, first = run
  base = os.path.dirname(first)
  stamp = os.path.getmtime(os.path.join(first, "saved_model.pb"))
  second = export.export(workdir, base)
  assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
  assert os.path.getmtime(os.path.join(first, "saved_model.pb")) == stamp
  assert sorted(os.listdir(base)) == ["1", "2"]  # No temporary left over.


@pytest.mark.parametrize("damaged", [
    "saved_model.pb", "variables/variables.index",
    "variables/variables.data-00000-of-00001", "assets/vocab.txt"])
def test_a_damaged_export_is_one_line_naming_the_version_before(run, tmp_path,
                                                               damaged):
  base = tmp_path / "model"
  for version in ("1", "2"):
    shutil.copytree(run[1], base / version)
  os.truncate(base / "2" / damaged, os.path.getsize(base / "2" / damaged) // 2)
  line = error_line(run_tool("score", f"--model={base}", stdin="a b\n"))
  assert line.startswith(f"error: the SavedModel {base}/2 is damaged (")
  assert line.endswith("export it again with kerasrnn-export, or load the "
                       f"version before it (--model={base}/1)")
  scored = run_tool("score", f"--model={base}/1", stdin="a b\n")
  assert scored.returncode == 0, scored.stderr[-2000:]


def test_score_reads_a_device_file_as_input(run):
  scored = run_tool("score", f"--model={run[1]}", "--input=/dev/null",
                    "--total_only")
  assert scored.returncode == 0, scored.stderr[-2000:]
  assert json.loads(scored.stdout) == {"sentences": 0, "num_tokens": 0,
                                       "perplexity": 1.0}


def test_a_killed_export_leaves_only_whole_versions(run, tmp_path):
  base = str(tmp_path / "model")
  rng = random.Random(31)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  for _ in range(3):
    export_tool = subprocess.Popen(
        [sys.executable, "-m", "kerasrnn.cli.export", f"--workdir={run[0]}",
         f"--export_base={base}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(3, 12))
    export_tool.send_signal(signal.SIGKILL)
    export_tool.wait()
  finished = run_tool("export", f"--workdir={run[0]}", f"--export_base={base}")
  assert finished.returncode == 0, finished.stderr[-2000:]
  # Every version TF Serving would see loads; the killed exports' temporaries
  # are gone (their processes are dead).
  names = os.listdir(base)
  assert names and all(n.isdigit() for n in names), names
  for name in names:
    loaded = tf.saved_model.load(os.path.join(base, name))
    assert "score" in loaded.signatures


def test_warmup_requests_replay_against_their_signatures(run, loaded):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(run[1], "assets.extra", "tf_serving_warmup_requests")
  names = []
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record)
    request = log.predict_log.request
    names.append(request.model_spec.signature_name)
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    outputs = loaded.signatures[names[-1]](**inputs)
    # Every request is a batch of 2 and every output has a row for each.
    assert {k: v.shape[0] for k, v in outputs.items()} == dict.fromkeys(
        outputs, 2), names[-1]
  assert sorted(names) == ["generate", "log_probs", "next_words", "score",
                           "step", "tokenize"]


def test_saved_model_cli_shows_and_runs_score(run):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  show = subprocess.run([cli, "show", "--dir", run[1], "--all"], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=True)
  for name in ("serving_default", "score", "next_words", "generate",
               "log_probs", "step"):
    assert f"signature_def['{name}']" in show.stdout
  assert "inputs['state_0_c']" in show.stdout
  ran = subprocess.run(
      [cli, "run", "--dir", run[1], "--tag_set", "serve", "--signature_def",
       "score", "--input_exprs", "text=['the company said']"], env=env,
      capture_output=True, text=True, timeout=300, check=True)
  assert "perplexity" in ran.stdout
  zeros = [[0.0] * 16]  # The smoke model's state: 1 layer of 16 units.
  ran = subprocess.run(
      [cli, "run", "--dir", run[1], "--tag_set", "serve", "--signature_def",
       "step", "--input_exprs", f"token_ids=[[2, 5]];targets=[[5, 0]];"
       f"state_0_h={zeros};state_0_c={zeros}"], env=env,
      capture_output=True, text=True, timeout=300, check=True)
  assert "next_log_probs" in ran.stdout and "state_0_c" in ran.stdout


def test_score_and_generate_tools_read_the_export(run, loaded):
  base = os.path.dirname(run[1])
  scored = run_tool("score", f"--model={base}",
                stdin="the company said\n\n  \nsaid the\n")
  assert scored.returncode == 0, scored.stderr[-2000:]
  rows = [json.loads(l) for l in scored.stdout.splitlines()]
  expected = loaded.signatures["score"](text=tf.constant(["the company said",
                                                          "said the"]))
  assert [r["num_tokens"] for r in rows] == [4, 3]  # Blank lines skipped.
  np.testing.assert_allclose([r["log_likelihood"] for r in rows],
                             expected["log_likelihood"].numpy(), rtol=1e-6)
  generated = run_tool("generate", f"--model={run[1]}", "--prompt=the company",
                   "--max_tokens=4", "--num_samples=3")
  assert generated.returncode == 0, generated.stderr[-2000:]
  samples = [json.loads(l) for l in generated.stdout.splitlines()]
  assert len(samples) == 3
  assert all(len(s["text"].split()) == s["num_tokens"] <= 4 for s in samples)
  # Seeded: the same samples again; top_k=1: the greedy text.
  seeded = [run_tool("generate", f"--model={run[1]}", "--prompt=the company",
                     "--max_tokens=6", "--num_samples=2", "--seed=5",
                     "--top_p=0.9").stdout for _ in range(2)]
  assert seeded[0] == seeded[1] and len(seeded[0].splitlines()) == 2
  top1, greedy = (run_tool("generate", f"--model={run[1]}",
                           "--prompt=the company", "--max_tokens=6",
                           *args).stdout
                  for args in (["--top_k=1"], ["--temperature=0"]))
  assert top1 == greedy and top1


def test_score_tool_on_a_split_file_equals_sentence_evaluation(run, tmp_path):
  workdir, path = run
  lines = lines_of_test_split(workdir)
  data = tmp_path / "test.txt"  # The split with blank lines in it.
  data.write_text("\n".join(lines[:5] + ["", "   "] + lines[5:]) + "\n\n")
  scored = run_tool("score", f"--model={path}", f"--input={data}", "--total_only")
  assert scored.returncode == 0, scored.stderr[-2000:]
  total = json.loads(scored.stdout.strip().splitlines()[-1])
  expected = evaluation.evaluate(workdir, "test", mode="sentence")
  assert total["sentences"] == len(lines)
  assert total["num_tokens"] == expected["target_tokens"]
  assert total["perplexity"] == pytest.approx(expected["perplexity"],
                                              rel=1e-5)


def long_lines_corpus(workdir, directory):
  """A run's config pointed at a corpus of its test sentences joined 30 to a
  line (hundreds of words; same training split, so the same vocabulary).

  Returns:
    (config, vocabulary, the lines of its test split).
  """
  config = wd.load_config(workdir)
  vocab = wd.load_vocab(workdir)
  lines = lines_of_test_split(workdir)
  long_lines = [" ".join(lines[i:i + 30]) for i in range(0, len(lines), 30)]
  with open(os.path.join(config.data.dir, "ptb.train.txt")) as f:
    train_lines = f.read().splitlines()
  config.data.dir = write_corpus(directory, {
      "train": train_lines, "valid": long_lines[:1], "test": long_lines})
  split = load_corpus(config.data, vocab).splits["test"]
  assert split.lengths.max() > 250
  return config, vocab, long_lines[:split.num_sentences]


def sentence_evaluation(workdir, config, vocab, split="test"):
  """(perplexity, target tokens) of a run's best checkpoint on `split` of
  the corpus `config` describes, in sentence mode."""
  model = evaluation.load_best_model(workdir, config, len(vocab))
  model.compile(**fast_path.compile_options(config))
  corpus = load_corpus(config.data, vocab)
  return evaluation.perplexity(
      model, pipelines.make_dataset(config.data, corpus, split))


def test_sentence_evaluation_of_long_lines_is_exact_whatever_max_length(
    run, loaded, tmp_path):
  """Lines of hundreds of words are read in chunks of max_length that carry
  the state: the same figure at every max_length, and the export's."""
  workdir, _ = run
  config, vocab, lines = long_lines_corpus(workdir, tmp_path / "long")
  scored = score_in_requests(loaded.signatures["score"], lines)
  tokens = int(tf.reduce_sum(scored["num_tokens"]))
  expected = np.exp(-float(tf.reduce_sum(scored["log_likelihood"])) / tokens)
  for max_length in (20, 100, 1_000):
    config.data.max_length = max_length
    ppl, count = sentence_evaluation(workdir, config, vocab)
    assert count == tokens
    assert ppl == pytest.approx(expected, rel=1e-5), max_length


def stream_test_split(workdir, step, chunk):
  """Streams a run's test split through the `step` signature as one row, in
  chunks of `chunk` tokens from the start state.

  Returns:
    (log-likelihood, target tokens, each call's next_log_probs).
  """
  config = wd.load_config(workdir)
  split = load_corpus(config.data, wd.load_vocab(workdir)).splits["test"]
  inputs, targets = (a[0] for a in pipelines.read_batch(
      split, np.array([[0, split.num_tokens]])))
  states = {k: tf.zeros([1] + [d or 0 for d in v.shape[1:]], v.dtype)
            for k, v in step.structured_input_signature[1].items()
            if k.startswith("state_")}
  log_likelihood, tokens, next_log_probs = 0.0, 0, []
  for start in range(0, len(inputs), chunk):
    out = step(token_ids=tf.constant(inputs[None, start:start + chunk]),
               targets=tf.constant(targets[None, start:start + chunk]),
               **states)
    states = {k: out[k] for k in states}
    log_likelihood += float(out["log_likelihood"][0])
    tokens += int(out["num_tokens"][0])
    next_log_probs.append(out["next_log_probs"].numpy())
  return log_likelihood, tokens, next_log_probs


def test_streaming_the_test_split_through_step_equals_stream_evaluation(
    run, loaded):
  workdir, _ = run
  log_likelihood, tokens, _ = stream_test_split(
      workdir, loaded.signatures["step"], 37)  # Chunks of any length.
  config = wd.load_config(workdir)
  split = load_corpus(config.data, wd.load_vocab(workdir)).splits["test"]
  expected = evaluation.evaluate(workdir, "test", batch_size=1, mode="stream")
  assert tokens == expected["target_tokens"] == split.num_tokens
  assert np.exp(-log_likelihood / tokens) == pytest.approx(
      expected["perplexity"], rel=1e-5)


def test_example_stream_client_scores_and_generates(run, tmp_path):
  workdir, path = run
  config = wd.load_config(workdir)
  client = os.path.join(os.path.dirname(os.path.dirname(__file__)), "export",
                        "stream_client.py")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  scored = subprocess.run(
      [sys.executable, client, f"--model={path}", "--chunk=50",
       f"--document={os.path.join(config.data.dir, 'ptb.test.txt')}"],
      env=env, capture_output=True, text=True, timeout=300, check=True)
  got = json.loads(scored.stdout.strip().splitlines()[-1])
  expected = evaluation.evaluate(workdir, "test", batch_size=1, mode="stream")
  assert got["tokens"] == expected["target_tokens"]
  assert got["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-5)
  generated = subprocess.run(
      [sys.executable, client, f"--model={path}", "--prompt=det0 noun1",
       "--max_tokens=6"], env=env, capture_output=True, text=True,
      timeout=300, check=True)
  words = json.loads(generated.stdout.strip().splitlines()[-1])["text"].split()
  assert len(words) <= 6 and "<pad>" not in words


def test_stream_client_tokenises_as_the_model_does(tmp_path_factory):
  """A lowercased, punctuation-tokenised model: the client's stream through
  `tokenize` + `step` scores the raw text as stream evaluation does."""
  rng = random.Random(4)

  def raw(sentences):  # Capitals and punctuation glued to the words.
    return [s.capitalize().replace(" noun", ", noun", rng.random() < 0.3)
            + rng.choice([".", "!", "?"]) for s in sentences]

  data = write_corpus(tmp_path_factory.mktemp("raw"), {
      "train": raw(grammar_sentences(600, 1)),
      "valid": raw(grammar_sentences(100, 2)),
      "test": raw(grammar_sentences(100, 3))}, pattern="{}.txt")
  workdir = str(tmp_path_factory.mktemp("punctuation"))
  train.train_and_evaluate(smoke_config(data, overrides={
      "data.source": "text", "data.lowercase": True,
      "data.tokenizer": "punctuation", "data.max_tokens": 0}), workdir)
  version = export.export(workdir, str(tmp_path_factory.mktemp("e") / "m"))
  client = os.path.join(ROOT, "export", "stream_client.py")
  scored = subprocess.run(
      [sys.executable, client, f"--model={version}", "--chunk=37",
       f"--document={os.path.join(data, 'test.txt')}"],
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
      text=True, timeout=300, check=True)
  got = json.loads(scored.stdout.strip().splitlines()[-1])
  expected = evaluation.evaluate(workdir, "test", batch_size=1, mode="stream")
  assert got["tokens"] == expected["target_tokens"]
  assert got["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-5)
  # Whitespace splitting would have made other (fewer) tokens.
  with open(os.path.join(data, "test.txt"), encoding="utf-8") as f:
    words = sum(len(l.split()) + 1 for l in f if l.strip())
  assert expected["target_tokens"] > words


@pytest.mark.parametrize("endpoint,inputs", [
    ("score", {"text": tf.constant(["the cat", "a dog sat"])}),
    ("next_words", {"text": tf.constant(["the cat", "a dog sat"])}),
    ("generate", {"prompt": tf.constant(["the", "a"]),
                  "max_tokens": tf.constant([3, 3]),
                  "temperature": tf.constant([0.0, 0.0])}),
    ("log_probs", {"token_ids": tf.constant([[2, 5, 0], [2, 7, 3]])}),
])
def test_keras_3_loads_every_signature_with_tfsmlayer(run, loaded, endpoint,
                                                      inputs):
  layer = keras.layers.TFSMLayer(run[1], call_endpoint=endpoint)
  if len(inputs) == 1:  # One tensor in.
    got = layer(*inputs.values())
  else:  # The first input, then the others by name.
    first, *others = inputs
    got = layer(inputs[first], **{k: inputs[k] for k in others})
  want = loaded.signatures[endpoint](**inputs)
  for key, value in want.items():
    if value.dtype == tf.string:
      assert (got[key].numpy() == value.numpy()).all(), key
    else:
      np.testing.assert_allclose(got[key].numpy(), value.numpy(), rtol=1e-6)


def test_step_signature_inside_a_keras_model(run, loaded):
  step = keras.layers.TFSMLayer(run[1], call_endpoint="step")
  spec = loaded.signatures["step"].structured_input_signature[1]
  inputs = {name: keras.Input(shape=s.shape[1:], dtype=s.dtype, name=name)
            for name, s in spec.items()}
  outputs = step(inputs)
  model = keras.Model(inputs, {"next_log_probs": outputs["next_log_probs"],
                               "log_likelihood": outputs["log_likelihood"]})
  feed = {n: np.zeros((2,) + tuple(s.shape[1:]), np.float32)
          for n, s in spec.items() if n.startswith("state_")}
  feed["token_ids"] = np.array([[2, 5, 7], [2, 9, 0]], np.int32)
  feed["targets"] = np.array([[5, 7, 0], [9, 0, 0]], np.int32)
  got = model(feed)
  want = loaded.signatures["step"](**{k: tf.constant(v) for k, v in feed.items()})
  np.testing.assert_allclose(got["log_likelihood"].numpy(),
                             want["log_likelihood"].numpy(), rtol=1e-6)
  assert got["next_log_probs"].shape == (2, len(wd.load_vocab(run[0])))


def test_export_tool_writes_the_next_version(run):
  base = os.path.dirname(run[1])
  before = set(os.listdir(base))
  out = run_tool("export", f"--workdir={run[0]}", f"--export_base={base}",
                 "--max_batch=7")
  assert out.returncode == 0, out.stderr[-2000:]
  new = out.stdout.strip().splitlines()[-1]
  assert os.path.basename(new) not in before
  assert os.path.exists(os.path.join(new, "saved_model.pb"))
  # It printed the model card, with the limits it holds requests to.
  card = json.loads(out.stdout[:out.stdout.rindex("}") + 1])
  assert card["limits"] == {"max_batch": 7, "max_request_tokens": 100_000,
                            "max_generate_tokens": 200}
  assert card == export.read_card(new)


def test_the_model_card_says_what_the_export_is(run, loaded):
  workdir, version = run
  card = export.read_card(version)
  signature = json.loads(loaded.signatures["metadata"]()[
      "model_card"].numpy().decode("utf-8"))
  assert signature == card
  results = wd.read_json(workdir, "results.json")
  assert card["results"] == results
  assert card["results_mode"] == "sentence"
  for split in ("valid", "test"):
    assert card["results"][f"{split}_perplexity"] == results[
        f"{split}_perplexity"]
  assert card["data"] == wd.read_json(workdir, "data.json")
  assert card["config"] == wd.load_config(workdir).to_dict()
  assert card["vocab_size"] == len(wd.load_vocab(workdir))
  assert card["parameters"] == sum(
      int(np.prod(v.shape)) for v in evaluation.best_weight_values(
          workdir).values())
  assert card["checkpoint"]["step"] == results["best_step"]
  assert (card["tensorflow"], card["keras"]) == (tf.__version__,
                                                 keras.__version__)
  info = run_tool("score", f"--model={version}", "--info")
  assert info.returncode == 0, info.stderr[-2000:]
  assert json.loads(info.stdout) == card


_MEMORY = textwrap.dedent("""
    import json, resource, sys
    import tensorflow as tf
    score = tf.saved_model.load(sys.argv[1]).signatures["score"]
    words = "the company said the market fell ".split()
    def line(n):
      return " ".join(words[i % len(words)] for i in range(n))
    peaks = {}
    for n in (1_000, 1_000, 1_000_000):
      out = score(text=tf.constant([line(n)]))
      assert int(out["num_tokens"][0]) == n + 1
      peaks[n] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(peaks))
""")


def test_score_of_a_million_word_line_is_refused_or_in_bounded_memory(
    run, loaded, tmp_path):
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="max_request_tokens=100000"):
    loaded.signatures["score"](text=tf.constant(["the " * 1_000_000]))
  # With the limit raised, read in chunks that carry the state: the peak
  # memory of the process is that of 1,000-word lines.
  version = export.export(run[0], str(tmp_path / "raised"),
                          limits=export.Limits(256, 2_000_000, 200))
  out = subprocess.run([sys.executable, "-c", _MEMORY, version], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  peaks = json.loads(out.stdout)
  assert peaks["1000000"] <= 1.10 * peaks["1000"], peaks



@pytest.mark.parametrize("tool,args,message", [
    ("generate", ["--prompt=a"], "neither a SavedModel nor a folder"),
    ("generate", ["--temperature=-1"], "--temperature=-1.0 must be >= 0"),
    ("generate", ["--num_samples=0"], "--num_samples=0 must be at least 1"),
    ("score", ["--input=/nonexistent.txt"], "--input=/nonexistent.txt does not"),
])
def test_tools_reject_bad_input_in_one_line(tmp_path, tool, args, message):
  out = run_tool(tool, f"--model={tmp_path}", *args)
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert message in out.stderr


@pytest.mark.skipif(not native_bfloat16(),
                    reason="no native bfloat16 on this CPU")
def test_a_bfloat16_export_scores_within_its_tolerance_of_float32(
    run, loaded, tmp_path):
  # The same weights, the graph in bfloat16 (inputs, outputs, states and
  # weights float32): each signature runs, and the scores stay within
  # 1 % of float32's perplexity (2 % per sentence).
  workdir, _ = run
  version = export.export(workdir, str(tmp_path / "bf16"),
                          precision="bfloat16")
  bf16 = tf.saved_model.load(version)
  lines = lines_of_test_split(workdir)
  want = score_in_requests(loaded.signatures["score"], lines)
  got = score_in_requests(bf16.signatures["score"], lines)
  np.testing.assert_array_equal(got["num_tokens"], want["num_tokens"])
  ppl = lambda s: np.exp(-np.sum(s["log_likelihood"]) / np.sum(s["num_tokens"]))
  assert ppl(got) == pytest.approx(ppl(want), rel=0.01)
  assert ppl(got) != ppl(want)  # It did compute in bfloat16.
  np.testing.assert_allclose(got["log_likelihood"], want["log_likelihood"],
                             rtol=0.02)
  ids = loaded.signatures["tokenize"](text=tf.constant(lines[:3]))
  states = {n: tf.zeros([3, s.shape[1]], s.dtype)
            for n, s in loaded.signatures["step"].structured_input_signature[
                1].items() if n.startswith("state_")}
  token_ids = ids["token_ids"][:, :-1]
  targets = ids["token_ids"][:, 1:]
  targets = tf.where(token_ids == 0, 0, targets)
  stepped = {name: model.signatures["step"](
      token_ids=token_ids, targets=targets, **states)
             for name, model in (("float32", loaded), ("bfloat16", bf16))}
  np.testing.assert_allclose(stepped["bfloat16"]["log_likelihood"],
                             stepped["float32"]["log_likelihood"], rtol=0.02)
  for name in states:
    assert stepped["bfloat16"][name].dtype == tf.float32
  out = bf16.signatures["generate"](prompt=tf.constant(["the", "a"]),
                                    max_tokens=tf.constant([4, 4]),
                                    temperature=tf.constant([0.0, 1.0]))
  assert out["num_tokens"].numpy().max() <= 4


def test_a_bfloat16_export_of_a_transformer_is_refused_in_one_line(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  config = smoke_config("unused", overrides={"model.cell": "transformer",
                                            "model.num_heads": 2})
  wd.write_json(workdir, "config.json", config.to_dict())
  with pytest.raises(UserError, match="exports recurrent models only"):
    export.load_module(workdir, precision="bfloat16")


def test_an_export_under_load_and_malformed_requests(run, loaded):
  # benchmarks/serving_load.py on the smoke export, smaller: 16 client
  # threads on one loaded export, each answer equal to the same request
  # sent alone; every malformed request refused, the export answering
  # afterwards.
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import serving_load  # pylint: disable=g-import-not-at-top
  figures = serving_load.load_test(
      loaded, serving_load.mixed_requests(loaded, 400), threads=16)
  assert figures["mismatches"] == 0 and figures["requests"] == 400
  assert set(figures["latency_ms"]) == {"score", "next_words", "generate",
                                        "sample", "step"}
  assert figures["rss_growth"] < 0.05, figures
  good = {"text": tf.constant(["the market fell", "a"])}
  answer = {k: v.numpy() for k, v in loaded.signatures["score"](**good).items()}
  fuzz = serving_load.fuzz_test(
      loaded, serving_load.malformed_requests(loaded, 170),
      ("score", good, answer))
  assert fuzz["refused"] == 170 and fuzz["answered"] == 0, fuzz
  assert len(fuzz["refused_by_class"]) == 11
