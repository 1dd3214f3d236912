import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from conftest import smoke_config
from kerasrnn import files
from kerasrnn import workdir as wd
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.serving import export
from kerasrnn.training import train


def _corpus(config):
  return load_corpus(config.data)


def test_check_accepts_the_same_run_with_other_paths_and_execution(tiny_dir,
                                                                   tmp_path):
  config = smoke_config(tiny_dir)
  run = str(tmp_path / "run")
  assert not wd.check_config(run, config)
  wd.claim(run, config, _corpus(config))
  config.data.dir = "/elsewhere/ptb"
  config.train.verbose = 2
  config.train.jit_compile = False
  config.train.distribute = "mirrored"
  assert wd.check_config(run, config)


def test_check_refuses_a_different_run(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir)
  wd.claim(str(tmp_path), config, _corpus(config))
  config.model.dropout = 0.5
  with pytest.raises(UserError, match="model.dropout: 0.0 -> 0.5"):
    wd.check_config(str(tmp_path), config)


def test_data_fingerprint_follows_content_not_path(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir)
  copy = shutil.copytree(tiny_dir, tmp_path / "copy")
  moved = smoke_config(str(copy))
  assert (wd.data_fingerprint(_corpus(config)) ==
          wd.data_fingerprint(_corpus(moved)))
  with open(os.path.join(copy, "ptb.test.txt"), "a", encoding="utf-8") as f:
    f.write(" the cat \n")
  changed = wd.data_fingerprint(_corpus(moved))
  assert changed["tokens"]["test"] == (
      wd.data_fingerprint(_corpus(config))["tokens"]["test"] + 3)
  assert changed["sha256"] != wd.data_fingerprint(_corpus(config))["sha256"]


@pytest.mark.parametrize("max_length, refused", [(4, True), (100, False)])
def test_a_sentence_run_of_the_old_layout_is_refused_only_with_long_sentences(
    tiny_dir, tmp_path, max_length, refused):
  config = smoke_config(tiny_dir, overrides={"data.mode": "sentence",
                                             "data.max_length": max_length})
  corpus = _corpus(config)
  wd.claim(str(tmp_path), config, corpus)
  wd.check_data(str(tmp_path), corpus, config.data)  # This version's run.
  old = wd.read_json(str(tmp_path), "data.json")
  del old["sentence_layout"]  # As kerasrnn 0.3 wrote it.
  wd.write_json(str(tmp_path), "data.json", old)
  if refused:
    with pytest.raises(UserError, match=r"before 0\.4.*max_length=4 \(the "
                       r"longest has \d+ tokens\).*new --workdir"):
      wd.check_data(str(tmp_path), corpus, config.data)
  else:
    wd.check_data(str(tmp_path), corpus, config.data)
  config.data.mode = "stream"  # Stream mode's layout did not change.
  wd.check_data(str(tmp_path), corpus, config.data)


class _Stop(Exception):
  pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
  """Ends a run in its second epoch, after epoch 1 is evaluated and saved
  (fit runs once per epoch here, evaluations at epochs' ends)."""

  def on_train_begin(self, logs=None):
    if int(self.model.optimizer.iterations.numpy()):
      raise _Stop


def test_copied_workdir_resumes_with_data_elsewhere_and_exports(corpus_dir,
                                                                tmp_path):
  # Not marked slow: the fast tier's one run that trains, resumes, exports.
  data = str(shutil.copytree(corpus_dir, tmp_path / "data"))
  first = str(tmp_path / "first")
  with pytest.raises(_Stop):
    train.train_and_evaluate(smoke_config(data), first,
                             [_StopAfterFirstEpoch()])
  epoch_1 = wd.read_history(first)
  assert [r["epoch"] for r in epoch_1] == [1]

  # Another machine: the workdir and the same data under other paths.
  moved = shutil.copytree(first, tmp_path / "moved")
  data_copy = shutil.copytree(data, tmp_path / "data_copy")
  results = train.train_and_evaluate(smoke_config(str(data_copy)), str(moved))
  rows = wd.read_history(moved)
  assert [r["epoch"] for r in rows] == [1, 2]
  assert rows[0] == epoch_1[0]  # Epoch 1 was not trained again.
  assert results["epochs"] == 2
  assert wd.load_config(moved).data.dir == str(data_copy)
  version = export.export(str(moved), str(tmp_path / "export"))
  scored = tf.saved_model.load(version).signatures["score"](
      text=tf.constant(["det0 noun0 verb0"]))
  assert int(scored["num_tokens"][0]) == 4
  assert np.isfinite(float(scored["log_likelihood"][0]))

  # Other data under the run's own settings are refused, untouched.
  other = shutil.copytree(data, tmp_path / "other")
  with open(os.path.join(other, "ptb.test.txt"), "a", encoding="utf-8") as f:
    f.write(" det0 noun0 verb0 det0 noun1 \n")
  before = open(os.path.join(first, "history.csv")).read()
  with pytest.raises(UserError, match="holds a run on other data"):
    train.train_and_evaluate(smoke_config(str(other)), first)
  assert open(os.path.join(first, "history.csv")).read() == before


def test_history_rows_of_a_redone_step_replace_the_old_ones(tmp_path):
  row = dict.fromkeys(wd.HISTORY_FIELDS, 1.0)
  for step in (10, 20, 30, 20):
    wd.write_history_row(str(tmp_path), dict(row, step=step,
                                              seconds=step + 0.5))
  rows = wd.read_history(str(tmp_path))
  assert [(r["step"], r["seconds"]) for r in rows] == [(10, 10.5),
                                                       (20, 20.5)]


def test_an_epoch_history_reads_in_steps(tmp_path):
  """history.csv of kerasrnn before 0.3: a row per epoch, seconds each."""
  (tmp_path / "history.csv").write_text(
      ",".join(wd.EPOCH_HISTORY_FIELDS) + "\n"
      "1,1,300.5,200.25,190,60.5,1000\n2,0.5,150,140,130,59.5,1010\n")
  rows = wd.read_history(str(tmp_path))
  assert [r["seconds"] for r in rows] == [60.5, 120.0]  # Summed up.
  assert all(np.isnan(r["step"]) and np.isnan(r["tokens"]) for r in rows)
  rows = wd.with_steps(rows, steps_per_epoch=50, tokens_per_epoch=1_000)
  assert [(r["step"], r["epoch"], r["tokens"]) for r in rows] == [
      (50, 1, 1_000), (100, 2, 2_000)]
  assert rows[1]["val_perplexity"] == 140
  assert all(np.isnan(r["val_word_perplexity"]) for r in rows)  # None then.
  wd.write_history(str(tmp_path), rows)
  assert str(wd.read_history(str(tmp_path))) == str(rows)  # NaN != NaN.


def test_a_history_without_word_perplexities_reads_and_is_written_with_them(
    tmp_path):
  """history.csv of kerasrnn 0.3: per step, no per-word perplexities."""
  (tmp_path / "history.csv").write_text(
      ",".join(wd.STEP_HISTORY_FIELDS) + "\n"
      "50,1,1000,1,300.5,200.25,190,60.5,1000\n")
  rows = wd.read_history(str(tmp_path))
  assert rows[0]["val_perplexity"] == 200.25
  assert np.isnan(rows[0]["test_word_perplexity"])
  wd.write_history_row(str(tmp_path), dict(rows[0], step=100,
                                           val_word_perplexity=250.5))
  assert (tmp_path / "history.csv").read_text().splitlines()[0] == ",".join(
      wd.HISTORY_FIELDS)
  assert [r["val_word_perplexity"] for r in wd.read_history(
      str(tmp_path))][1:] == [250.5]


def test_one_training_per_workdir_the_second_is_refused_naming_the_first(
    tmp_path):
  run = str(tmp_path / "run")
  with wd.locked(run):
    with pytest.raises(UserError, match=(
        rf"{run} is in use by another training \(pid {os.getpid()} on .* "
        r"since 20\d\d-.*\); wait for it to end")):
      with wd.locked(run):
        pass
  with wd.locked(run):  # Released at the end of the block.
    pass


def test_the_lock_of_a_killed_training_is_released(tmp_path):
  run = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from kerasrnn import workdir; "
       f"lock = workdir.locked({run!r}); lock.__enter__(); "
       "print('held', flush=True); "
       "time.sleep(60)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(UserError, match=f"pid {holder.pid} "):
      with wd.locked(run):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with wd.locked(run):
    pass


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "run"
  path.write_text("notes")
  with pytest.raises(UserError, match=f"--workdir {path} is a file, not a "
                     "directory"):
    with wd.locked(str(path)):
      pass


def _history_text(rows):
  header = ",".join(wd.HISTORY_FIELDS)
  return header + "\n" + "".join(
      f"{r},1,200,1,90.5,80.25,79,1.5,1000,95.5,94\n" for r in rows)


@pytest.mark.parametrize("text,reason", [
    (_history_text([1, 2])[:-30], "its last line is cut short"),
    (_history_text([1, 2])[:-20] + "\n", "row 2 has 7 fields"),
    (_history_text([2, 1]), "its steps do not increase"),
    (_history_text([1]).replace("80.25", "x"), "row 1 holds a field that is"),
    (",".join(wd.EPOCH_HISTORY_FIELDS) + "\n2,1,2,2,2,1,1\n",
     "its rows are not epochs 1, 2, ..."),
    ("epoch,loss\n1,2\n", "its header is not kerasrnn's"),
    ("", "empty"),
])
def test_a_damaged_history_is_one_line(tmp_path, text, reason):
  (tmp_path / "history.csv").write_text(text)
  with pytest.raises(UserError, match=(
      rf"history.csv is damaged \({reason}.*\); while the run is unfinished, "
      "kerasrnn-train restores it from backup/")):
    wd.read_history(str(tmp_path))


@pytest.mark.parametrize("cut,reason", [
    (lambda t: "".join(t.splitlines(True)[:6]), "6 words, data.json says 1"),
    (lambda t: t[:-3], "its last line is cut short"),
    (lambda t: "x\n" + t, "a vocabulary must start with <pad>"),
])
def test_a_damaged_vocabulary_is_one_line(tiny_dir, tmp_path, cut, reason):
  config = smoke_config(tiny_dir)
  run = str(tmp_path / "run")
  wd.claim(run, config, _corpus(config))
  vocab = tmp_path / "run" / "vocab.txt"
  vocab.write_text(cut(vocab.read_text()))
  with pytest.raises(UserError, match=rf"vocab.txt is damaged \({reason}"):
    wd.load_vocab(run)


def _compiled_model(seed):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer="adam", loss="mse")
  model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
  return model


def test_resume_states_keep_two_and_pass_over_a_damaged_one(tmp_path):
  run = str(tmp_path)
  saved = {}
  for step in (10, 20, 30):
    model = _compiled_model(step)
    wd.write_history_row(run, dict(dict.fromkeys(wd.HISTORY_FIELDS, 1.0),
                                   step=step))
    wd.save_state(run, model, step, {"carried": np.full(3, step / 7)})
    saved[step] = model.get_weights() + [
        v.numpy() for v in model.optimizer.variables]
  assert sorted(os.listdir(tmp_path / "backup")) == [
      f"step-{s}.{kind}" for s in (20, 30)
      for kind in ("history.csv", "state.npz", "weights.h5")]

  def restored():
    model = _compiled_model(0)
    step, arrays = wd.restore_state(run, model, steps_per_epoch=7)
    values = model.get_weights() + [v.numpy() for v in model.optimizer.variables]
    for got, want in zip(values, saved[step], strict=True):
      np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(arrays["carried"], np.full(3, step / 7))
    return step

  assert restored() == 30
  # The newest state cut short: the one before it, and its history.
  newest = tmp_path / "backup" / "step-30.state.npz"
  os.truncate(newest, os.path.getsize(newest) // 2)
  (tmp_path / "history.csv").write_text("step,learn")
  assert restored() == 20
  assert [r["step"] for r in wd.read_history(run)] == [10, 20]
  # Both damaged: one line, and what to do.
  older = tmp_path / "backup" / "step-20.weights.h5"
  older.write_bytes(b"")
  with pytest.raises(UserError, match=(
      r"every resume state in .*backup is damaged \(.*step-30.state.npz is "
      r"damaged .*step-20.weights.h5 is damaged .*\); delete .*backup to "
      "train again from step 0")):
    restored()


def test_an_epoch_end_state_resumes_at_its_step(tmp_path):
  """backup/epoch-N.weights.h5 of kerasrnn before 0.3."""
  model = _compiled_model(1)
  files.save_weights(model, str(tmp_path / "backup" / "epoch-3.weights.h5"))
  assert wd.state_steps(str(tmp_path), steps_per_epoch=40) == [120]
  other = _compiled_model(0)
  assert wd.restore_state(str(tmp_path), other, 40) == (120, {})
  for got, want in zip(other.get_weights(), model.get_weights(), strict=True):
    np.testing.assert_array_equal(got, want)
