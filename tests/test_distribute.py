"""train.distribute=mirrored over two logical CPU devices, in a subprocess
(logical devices must be set before TensorFlow starts)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError

TESTS = os.path.dirname(os.path.abspath(__file__))

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tests, data_dir, root = sys.argv[1:]
sys.path.insert(0, tests)
from conftest import smoke_config
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
from kerasrnn.models import build_model
from kerasrnn.training import distribute, evaluation, train
from kerasrnn.training import workdir as wd
out = {}
for name in ("none", "mirrored"):
  config = smoke_config(data_dir, "sentence", {
      "train.distribute": name, "train.clip_norm": 0.0})
  results = train.train_and_evaluate(config, f"{root}/{name}")
  model = build_model(config, results["vocab_size"])
  model.load_weights(wd.best_weights(f"{root}/{name}"))
  np.savez(f"{root}/{name}/weights.npz", *model.get_weights())
  strategy = distribute.strategy(config.train)
  out[name] = {"replicas": strategy.num_replicas_in_sync,
               "results": results,
               "history": wd.read_json(f"{root}/{name}", "checkpoints/best.json")}
# The single-device checkpoint evaluated under both strategies.
config = smoke_config(data_dir, "sentence")
corpus = load_corpus(config.data)
valid = pipelines.make_dataset(config.data, corpus, "valid")
for name in ("none", "mirrored"):
  config.train.distribute = name
  with distribute.strategy(config.train).scope():
    model = build_model(config, len(corpus.vocab))
    model.compile()
  model.load_weights(wd.best_weights(f"{root}/none"))
  out[name]["valid_of_single_weights"] = evaluation.perplexity(model, valid)
print("RESULT " + json.dumps(out))
"""


def test_mirrored_trains_like_one_device_and_perplexity_is_exact(
    ptb_dir, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-c", SCRIPT, TESTS, ptb_dir, str(tmp_path)],
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[0][len("RESULT "):])
  single, mirrored = out["none"], out["mirrored"]
  assert (single["replicas"], mirrored["replicas"]) == (1, 2)
  # Two epochs of the smoke config: the same weights and perplexities up to
  # float32 summation order (the replicas' gradients are added, not averaged
  # from separately reduced means).
  for key in ("train_perplexity", "valid_perplexity", "test_perplexity"):
    np.testing.assert_allclose(mirrored["results"][key],
                               single["results"][key], rtol=1e-4)
  a = np.load(tmp_path / "none" / "weights.npz")
  b = np.load(tmp_path / "mirrored" / "weights.npz")
  assert len(a.files) == len(b.files) > 0
  for k in a.files:
    np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6)
  # The same weights: exact perplexity over the validation split does not
  # depend on the strategy (sums and counts aggregate across replicas).
  (p1, n1), (p2, n2) = (single["valid_of_single_weights"],
                        mirrored["valid_of_single_weights"])
  assert n1 == n2 > 0
  assert abs(p2 - p1) / p1 < 1e-5


@pytest.mark.parametrize("overrides,message", [
    ({"train.distribute": "mirrored"}, "needs data.mode=sentence"),
    ({"train.distribute": "multi_worker", "data.mode": "sentence"},
     "'multi_worker' is not supported yet"),
])
def test_unsupported_layouts_are_refused(overrides, message):
  with pytest.raises(UserError, match=message):
    config_lib.validate(smoke_config("", overrides=overrides))
