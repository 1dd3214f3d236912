r"""kerasrnn-generate: sample continuations from an exported model.

  kerasrnn-generate --model=export/ptb_small --prompt="the company said" \
      --max_tokens=20 --temperature=0.8 --top_p=0.9 --num_samples=3 --seed=1

Uses only TensorFlow and the SavedModel's `sample` signature (`generate`
for exports of kerasrnn before 0.5, without --top_k, --top_p or --seed);
each sample stops at <eos> or after --max_tokens words.
"""
import json

from absl import flags

from kerasrnn import cli  # First: it quiets TensorFlow's start-up logs.
import tensorflow as tf  # pylint: disable=g-bad-import-order
from kerasrnn.serving import saved_model
from kerasrnn.errors import UserError

_MODEL = flags.DEFINE_string("model", None, "SavedModel dir or model base.")
_PROMPT = flags.DEFINE_multi_string("prompt", [""], "Prompt text (repeatable).")
_MAX = flags.DEFINE_integer("max_tokens", 20, "Most new words per sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "0 = greedy.")
_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples per prompt.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Draw from the k most likely words "
                              "only (0 = all; 1 = greedy).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Draw from the smallest set of most "
                            "likely words whose probability reaches p "
                            "(nucleus sampling; 1 = all).")
_SEED = flags.DEFINE_integer("seed", None, "Same seed, same samples (sample i "
                             "of a prompt draws with seed + i).")
flags.mark_flag_as_required("model")


def main(argv):
  del argv
  if _SAMPLES.value < 1:
    raise UserError(f"--num_samples={_SAMPLES.value} must be at least 1")
  if _TEMPERATURE.value < 0:
    raise UserError(f"--temperature={_TEMPERATURE.value} must be >= 0")
  if _TOP_K.value < 0:
    raise UserError(f"--top_k={_TOP_K.value} must be >= 0 (0 = all words)")
  if not 0 < _TOP_P.value <= 1:
    raise UserError(f"--top_p={_TOP_P.value} must be in (0, 1] (1 = all "
                    "words)")
  if _SEED.value is not None and _SEED.value < 0:
    raise UserError(f"--seed={_SEED.value} must be >= 0")
  signatures = saved_model.load(_MODEL.value).signatures
  prompts = [p for p in _PROMPT.value for _ in range(_SAMPLES.value)]
  n = len(prompts)
  args = dict(prompt=tf.constant(prompts), max_tokens=tf.fill([n], _MAX.value),
              temperature=tf.fill([n], _TEMPERATURE.value))
  if "sample" in signatures:
    seeds = (tf.fill([n], tf.constant(-1, tf.int64)) if _SEED.value is None
             else tf.constant([_SEED.value + i % _SAMPLES.value
                               for i in range(n)], tf.int64))
    out = signatures["sample"](top_k=tf.fill([n], _TOP_K.value),
                               top_p=tf.fill([n], _TOP_P.value), seed=seeds,
                               **args)
  elif _TOP_K.value or _TOP_P.value < 1 or _SEED.value is not None:
    raise UserError(f"{_MODEL.value} was exported by kerasrnn before 0.5, "
                    "without --top_k, --top_p and --seed; export it again")
  else:
    out = signatures["generate"](**args)
  for i, prompt in enumerate(prompts):
    print(json.dumps({"prompt": prompt,
                      "text": out["text"][i].numpy().decode("utf-8"),
                      "num_tokens": int(out["num_tokens"][i])}))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
