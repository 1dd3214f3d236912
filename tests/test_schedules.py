"""The learning rate by step: each schedule's formula, in Python and in the
optimizer's own update."""
import math

import keras
import numpy as np
import pytest

from conftest import smoke_config
from kerasrnn.errors import UserError
from kerasrnn import config as config_lib
from kerasrnn.training import schedules
from kerasrnn.training import train

N, TOTAL, LR = 100, 1_000, 0.8  # Steps per epoch, steps in all, the rate.


def _train(schedule, warmup=0, decay=2.0, decay_after=3):
  config = smoke_config("", overrides={
      "train.schedule": schedule, "train.warmup_steps": warmup,
      "train.learning_rate": LR, "train.decay": decay,
      "train.decay_after": decay_after})
  return config_lib.validate(config).train


# (schedule, warm-up, step, the formula written out by hand).
CASES = [
    ("epoch_decay", 0, 0, LR), ("epoch_decay", 0, 199, LR),
    ("epoch_decay", 0, 299, LR), ("epoch_decay", 0, 300, LR / 2),
    ("epoch_decay", 0, 599, LR / 8),
    ("constant", 0, 777, LR),
    ("cosine", 0, 0, LR), ("cosine", 0, 500, LR / 2),
    ("cosine", 0, 250, LR * (1 + math.cos(math.pi / 4)) / 2),
    ("cosine", 0, 1_000, 0.0),
    ("cosine", 100, 49, LR * 50 / 100), ("cosine", 100, 100, LR),
    ("cosine", 100, 550, LR / 2),
    ("linear", 0, 250, LR * 0.75), ("linear", 200, 600, LR / 2),
    ("inverse_sqrt", 100, 0, LR / 100), ("inverse_sqrt", 100, 99, LR),
    ("inverse_sqrt", 100, 399, LR / 2), ("inverse_sqrt", 100, 9_999, LR / 10),
    ("plateau", 0, 5, LR), ("plateau", 10, 4, LR / 2),
]


@pytest.mark.parametrize("schedule,warmup,step,expected", CASES)
def test_each_schedule_is_its_formula(schedule, warmup, step, expected):
  train_config = _train(schedule, warmup)
  got = schedules.learning_rate(train_config, step, N, TOTAL)
  assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("schedule,warmup,step,expected", CASES)
def test_the_optimizer_updates_at_the_schedules_rate(schedule, warmup, step,
                                                     expected):
  """SGD's update at `step` moves a weight by rate x gradient."""
  train_config = _train(schedule, warmup)
  train_config.clip_norm = 0.0
  rate = lambda s: schedules.learning_rate(train_config, s, N, TOTAL)
  optimizer = train.make_optimizer(train_config, rate)
  variable = keras.Variable(np.zeros(3, np.float32))
  optimizer.build([variable])
  optimizer.iterations.assign(step)
  optimizer.apply([keras.ops.ones(3)], [variable])
  np.testing.assert_allclose(-keras.ops.convert_to_numpy(variable),
                             np.full(3, expected), rtol=1e-5, atol=1e-9)


def test_plateau_divides_by_decay_per_validation_that_did_not_improve():
  run = train.Run(smoke_config("", overrides={
      "train.schedule": "plateau", "train.decay": 4.0,
      "train.learning_rate": LR}), N, TOTAL)
  history = [{"val_perplexity": v} for v in (100, 90, 95, 91, 80, 85)]
  for rows, worse in ((1, 0), (2, 0), (3, 1), (4, 2), (5, 2), (6, 3)):
    run.set_scale(history[:rows])
    assert run.learning_rate(10) == pytest.approx(LR / 4**worse)


def test_inverse_sqrt_without_warm_up_is_one_line():
  with pytest.raises(UserError, match="train.schedule=inverse_sqrt needs "
                     "train.warmup_steps > 0"):
    _train("inverse_sqrt")


def test_an_unknown_schedule_is_one_line():
  with pytest.raises(UserError, match="config train.schedule='step' is not "
                     "one of epoch_decay, constant, cosine"):
    _train("step")
