"""What each epoch starts from, and the resume state's recurrent state."""
import numpy as np

from conftest import smoke_config
from kerasrnn.models import build_model
from kerasrnn.training import callbacks as cb


def test_an_epoch_of_many_draws_does_not_repeat_the_next_epochs_masks():
  config = smoke_config("", overrides={"data.mode": "sentence",
                                       "model.dropout": 0.5})
  model = build_model(config, vocab_size=40)
  seeds = [int(v.numpy()[0]) for v in cb.seed_states(model)]
  assert seeds
  x = np.random.default_rng(0).integers(1, 40, (3, 6)).astype("int32")
  cb.start_epoch(model, seeds, 0)
  for state in cb.seed_states(model):  # 2**20 masks into epoch 0.
    state.assign(np.array([state.numpy()[0], 2**20], state.dtype))
  late = model(x, training=True).numpy()
  cb.start_epoch(model, seeds, 1)
  next_epoch = model(x, training=True).numpy()
  assert not np.allclose(late, next_epoch)
  cb.start_epoch(model, seeds, 1)  # An epoch's masks are its own, always.
  np.testing.assert_array_equal(model(x, training=True).numpy(), next_epoch)


def test_each_epoch_has_its_own_first_seed():
  firsts = [cb.epoch_seed(1234, e) for e in range(10_000)]
  assert firsts[0] == 1234
  assert len(set(firsts)) == len(firsts)
  assert all(0 <= f < 2**31 - 2 for f in firsts[1:])
