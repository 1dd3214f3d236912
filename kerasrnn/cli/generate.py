"""kerasrnn-generate: sample continuations from an exported model.

  kerasrnn-generate --model=export/ptb_small --prompt="the company said" \
      --max_tokens=20 --temperature=0.8 --num_samples=3

Uses only TensorFlow and the SavedModel's `generate` signature; each sample
stops at <eos> or after --max_tokens words.
"""
import json

from absl import flags
import tensorflow as tf

from kerasrnn import cli
from kerasrnn.serving import saved_model
from kerasrnn.errors import UserError

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_PROMPT = flags.DEFINE_multi_string("prompt", [""], "Prompt text (repeatable).")
_MAX = flags.DEFINE_integer("max_tokens", 20, "Most new words per sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "0 = greedy.")
_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples per prompt.")
_SEED = flags.DEFINE_integer("seed", None, "Global TF seed for sampling.")
flags.mark_flag_as_required("model")


def main(argv):
  del argv
  if _SAMPLES.value < 1:
    raise UserError(f"--num_samples={_SAMPLES.value} must be at least 1")
  if _TEMPERATURE.value < 0:
    raise UserError(f"--temperature={_TEMPERATURE.value} must be >= 0")
  if _SEED.value is not None:
    tf.random.set_seed(_SEED.value)
  generate = saved_model.load(_MODEL.value).signatures["generate"]
  prompts = [p for p in _PROMPT.value for _ in range(_SAMPLES.value)]
  out = generate(prompt=tf.constant(prompts),
                 max_tokens=tf.fill([len(prompts)], _MAX.value),
                 temperature=tf.fill([len(prompts)], _TEMPERATURE.value))
  for i, prompt in enumerate(prompts):
    print(json.dumps({"prompt": prompt,
                      "text": out["text"][i].numpy().decode("utf-8"),
                      "num_tokens": int(out["num_tokens"][i])}))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
