"""The learning rate by optimizer step (config `train.schedule`).

`learning_rate(train, step, ...)` is the one formula: Python numbers in,
a float out, or tensors in (inside the compiled train step), a tensor out.
`step` counts the updates done before this one (the optimizer's
`iterations`), so the first update uses `learning_rate(train, 0, ...)`.

- epoch_decay: `learning_rate / decay ** max(0, epoch + 1 - decay_after)`,
  epoch = step // steps_per_epoch (Zaremba et al. 2014; the default).
- constant: `learning_rate`.
- cosine: from `learning_rate` after the warm-up down to 0 at the last
  step, half a cosine; linear: the same on a straight line.
- inverse_sqrt: `learning_rate * sqrt(warmup_steps / (step + 1))` after the
  warm-up (fairseq's `inverse_sqrt`).
- plateau: `learning_rate * scale`, where the training loop divides `scale`
  by `decay` after each validation that is not the best so far
  (pytorch/examples' word language model).

A warm-up of `warmup_steps` multiplies any of them by `(step + 1) /
warmup_steps` until it reaches 1.
"""
import math

import keras
from keras import ops


def learning_rate(train, step, steps_per_epoch, total_steps, scale=1.0):
  """The learning rate of the update after `step` completed steps.

  Args:
    train: the `config.train` ConfigDict (schedule, learning_rate, decay,
      decay_after, warmup_steps).
    step: completed updates, an int or an integer tensor.
    steps_per_epoch: steps per pass over the training split.
    total_steps: the run's length in steps (cosine, linear).
    scale: plateau's factor (a float or a variable).
  """
  symbolic = not isinstance(step, (int, float))
  s = ops.cast(step, "float32") if symbolic else float(step)
  np_ = ops if symbolic else _Math
  lr = train.learning_rate
  warmup = float(train.warmup_steps)
  name = train.schedule
  if name == "epoch_decay":
    epoch = np_.floor(s / steps_per_epoch)
    rate = lr / train.decay ** np_.maximum(
        0.0, epoch + 1.0 - train.decay_after)
  elif name == "constant":
    rate = lr + 0.0 * s
  elif name in ("cosine", "linear"):
    progress = np_.clip((s - warmup) / max(total_steps - warmup, 1.0),
                        0.0, 1.0)
    if name == "cosine":
      rate = lr * 0.5 * (1.0 + np_.cos(math.pi * progress))
    else:
      rate = lr * (1.0 - progress)
  elif name == "inverse_sqrt":
    rate = lr * np_.sqrt(warmup / np_.maximum(s + 1.0, warmup))
  elif name == "plateau":
    rate = lr * scale + 0.0 * s
  else:
    raise ValueError(f"unknown schedule {name!r}")
  if warmup:
    rate = rate * np_.minimum(1.0, (s + 1.0) / warmup)
  return rate if symbolic else float(rate)


class _Math:
  """The few `keras.ops` functions above, on Python floats."""
  floor = staticmethod(math.floor)
  maximum = staticmethod(max)
  minimum = staticmethod(min)
  cos = staticmethod(math.cos)
  sqrt = staticmethod(math.sqrt)

  @staticmethod
  def clip(x, low, high):
    return min(max(x, low), high)


def scheduled(optimizer_class, rate):
  """`optimizer_class` whose learning rate is `rate(iterations)` at every
  update, computed in the train step itself.

  The optimizer keeps its `learning_rate` variable (so its checkpoints are
  those of the plain optimizer) but reads the rate from `rate`.
  """

  class Scheduled(optimizer_class):

    def _get_current_learning_rate(self):
      return ops.cast(rate(self.iterations), "float32")

  Scheduled.__name__ = optimizer_class.__name__
  return Scheduled


def plateau_scale():
  """The plateau schedule's factor: a variable the training loop sets."""
  return keras.Variable(1.0, dtype="float32", trainable=False,
                        name="plateau_scale")
