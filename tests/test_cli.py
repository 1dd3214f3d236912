"""The command lines: JSON output, and one-line errors for bad input."""
import json
import os
import re

import pytest

from conftest import error_line
from conftest import run_tool


def test_data_prints_corpus_and_pipeline_numbers(tiny_dir):
  result = run_tool("data", "--config=configs/smoke.py:sentence",
                f"--config.data.dir={tiny_dir}", "--config.data.batch_size=2")
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout)
  assert out["vocab_size"] == 3 + 10  # the cat sat on mat dog a saw is red
  train = out["splits"]["train"]
  assert (train["tokens"], train["sentences"]) == (29, 5)
  assert train["target_tokens"] == 29
  assert train["padding_overhead"] == pytest.approx(
      train["padded_positions"] / 29, abs=1e-4)


def test_data_stream_mode_reports_dropped_tokens(tiny_dir):
  result = run_tool("data", "--config=configs/smoke.py", f"--config.data.dir={tiny_dir}",
                "--config.data.batch_size=4", "--config.data.num_steps=3")
  out = json.loads(result.stdout)["splits"]["train"]
  assert out["dropped_tokens"] == 29 % 4
  assert out["target_tokens"] == 28


@pytest.mark.parametrize("args,message", [
    (["--config=configs/smoke.py:nope"], "unknown config variant 'nope'"),
    (["--config=configs/nothere.py"], "No such file or directory"),
    (["--config.model.cell=rnn"], "model.cell='rnn' is not one of lstm, gru"),
    (["--config.train.optimizer=rmsprop"], "train.optimizer='rmsprop'"),
    (["--config.model.hidden_size=-5"], "model.hidden_size=-5 must be positive"),
    (["--config.model.dropout=1.0"], "model.dropout=1.0 must be in [0, 1)"),
    (["--config.data.batch_size=0"], "data.batch_size=0 must be positive"),
    (["--config.data.max_length=1"], "max_length=1 must be at least 2"),
    (["--config.model.nope=3"], "unknown config field 'nope' (--help lists the fields"),
    (["--config.model.hiden_size=3"], "unknown config field 'hiden_size'; "
     'did you mean "hidden_size" instead of "hiden_size"? (--help lists the fields'),
    (["--config.data.dir=/nonexistent"], "data directory /nonexistent does not exist"),
])
def test_bad_input_is_one_line_before_training(tmp_path, tiny_dir, args,
                                               message):
  if not any(a.startswith("--config=") for a in args):
    args = ["--config=configs/smoke.py", f"--config.data.dir={tiny_dir}"] + args
  workdir = tmp_path / "run"
  line = error_line(run_tool("train", *args, f"--workdir={workdir}"))
  assert line.startswith("error: ") and message in line
  assert not workdir.exists() or not any(workdir.iterdir())


def test_non_utf8_corpus_names_the_line(tiny_dir):
  with open(os.path.join(tiny_dir, "ptb.valid.txt"), "ab") as f:
    f.write(b"\xff\xfe bad \n")
  line = error_line(run_tool("data", "--config=configs/smoke.py",
                          f"--config.data.dir={tiny_dir}"))
  assert "ptb.valid.txt:3 is not valid UTF-8" in line


def test_evaluate_of_a_non_workdir_is_one_line(tmp_path):
  line = error_line(run_tool("evaluate", f"--workdir={tmp_path}"))
  assert "not a kerasrnn workdir" in line


def test_rows_that_replicas_cannot_split_are_one_line(tmp_path,
                                                             tiny_dir):
  line = error_line(run_tool("train", "--config=configs/smoke.py",
                             f"--config.data.dir={tiny_dir}", "--cpu_devices=3",
                             "--config.train.distribute=mirrored",
                             f"--workdir={tmp_path / 'run'}"))
  assert ("data.batch_size=10 must be a multiple of the 3 replicas of "
          "train.distribute (each replica keeps the state of its own rows)"
          ) in line


def test_shipped_configs_are_found_from_any_directory(tmp_path, tiny_dir):
  result = run_tool("data", "--config=configs/smoke.py:sentence",
                    f"--config.data.dir={tiny_dir}", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout)["splits"]["train"]["tokens"] == 29


def test_a_config_in_the_working_directory_comes_first(tmp_path, tiny_dir):
  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "smoke.py").write_text(
      "raise ValueError('the local smoke.py')\n")
  line = error_line(run_tool("data", "--config", "configs/smoke.py",
                             f"--config.data.dir={tiny_dir}", cwd=tmp_path))
  assert "the local smoke.py" in line


def test_tensorflow_start_up_lines_only_when_asked(tiny_dir):
  args = ("--config=configs/smoke.py", f"--config.data.dir={tiny_dir}")
  quiet = run_tool("data", *args, env={"TF_CPP_MIN_LOG_LEVEL": None})
  loud = run_tool("data", *args, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
  assert quiet.returncode == loud.returncode == 0, quiet.stderr[-3000:]
  assert quiet.stdout == loud.stdout
  assert "oneDNN" in loud.stderr  # TensorFlow's start-up notice, on x86.
  for line in quiet.stderr.splitlines():  # Only kerasrnn's own log lines.
    assert re.match(r"[IW]\d{4} [\d:. ]+\d+ (corpus|store)\.py:", line), line


def test_help_shows_the_tools_flags_and_the_config_fields():
  result = run_tool("train", "--help")  # absl's --help exits with 1.
  assert "kerasrnn-train --config=configs/small.py --workdir=runs/small" in (
      result.stdout)
  assert "--workdir: Directory of the run." in result.stdout
  assert "--config.model.hidden_size=200" in result.stdout
  assert "--config.train.precision='float32'" in result.stdout


def test_export_refuses_a_negative_fused_max_batch(tmp_path):
  line = error_line(run_tool("export", f"--workdir={tmp_path}",
                             f"--export_base={tmp_path / 'export'}",
                             "--fused_max_batch=-1"))
  assert line == ("error: --fused_max_batch=-1 must be >= 0 (0: never the "
                  "fused LSTM op)")
