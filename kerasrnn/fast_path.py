"""How training and evaluation steps run on this machine: with XLA or not.

`train.jit_compile` set in the config is obeyed. Unset (the default), the
choice follows what was measured (docs/results.md#training-speed, the
2x200 LSTM/GRU of configs/small.py, 2 cores):

- Stream mode on an x86 CPU with AVX-512 that XLA may use (Intel Xeon):
  XLA on for layers of up to 200 units without weight drop: the 2x200 LSTM
  step was 1.06-1.07x faster with it (docs/speed/ablation.jsonl). Off for
  wider layers (equal at 400 units, 0.87-0.91x as fast at 650 and 1,000)
  and with weight drop (0.27x as fast at 1,000 units); measured on the
  Intel Xeon on 2026-11-30 (commit 3e20a2b) (docs/history/training_speed.md).
- Stream mode on a CPU without AVX-512 (AMD EPYC Zen 3: AVX2 + FMA): XLA
  off; the step was 0.83-0.86x as fast with it (TensorFlow's kernels, which
  call oneDNN, beat XLA's code there; docs/speed/amd_epyc_jit.jsonl). With
  XLA capped below AVX-512 (`XLA_FLAGS=--xla_cpu_max_isa=AVX2`) on an
  AVX-512 CPU, likewise off: the cap does not reach XLA's matrix products
  (they ran at native speed capped at AVX2 and even SSE4.2; 2026-11-30 (commit a888b1f),
  benchmarks/isa_check.py), so only an XLA-off step is restricted.
- Sentence mode: XLA off everywhere (every new batch shape would compile
  anew, which measured slower); so is the adaptive softmax, whose clusters
  take as many rows as each batch has targets in them.
- Mixed precision on a CPU (train.precision): XLA off. With
  mixed_bfloat16 the 2x200 LSTM step ran at 0.72-0.74x the speed without XLA
  (AMD EPYC Zen 4, 2026-12-05; docs/results.md, "Mixed precision").
- A GPU: XLA on in stream mode (not measured here; the earlier default).

Where XLA is off, kerasrnn's recurrent layers multiply by each gate's
block of the recurrent kernel separately (`gate_matmuls`; see
kerasrnn/models/recurrent.py), where it is on, by the whole kernel.

`describe` gives the one line `kerasrnn-train` logs at start.
"""
import functools
import os
import re

from absl import logging
import tensorflow as tf

from kerasrnn.errors import UserError

# XLA's names for instruction sets, lowest first (`--xla_cpu_max_isa`).
_XLA_ISAS = ("SSE4_2", "AVX", "AVX2", "AVX512", "AVX512_VNNI",
             "AVX512_BF16", "AMX", "AMX_FP16")


# The widest layers XLA measured faster with (on AVX-512, 2 cores).
XLA_MAX_UNITS = 200


@functools.lru_cache(maxsize=None)
def cpu():
  """(model name, set of feature flags) of this machine's CPU, from Linux's
  /proc/cpuinfo; ('unknown', set()) where that is not available."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
      return parse_cpuinfo(f.read())
  except OSError:
    return "unknown", frozenset()


def parse_cpuinfo(text):
  """(model name, feature flags) of the first processor in a cpuinfo text."""
  name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
  flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
  return ((name.group(1).strip() if name else "unknown"),
          frozenset(flags.group(1).split() if flags else ()))


def xla_isa_cap(xla_flags=None):
  """The ISA XLA_FLAGS caps XLA's CPU code at (upper case), or None."""
  flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
  found = re.findall(r"--xla_cpu_max_isa=(\S+)", flags)
  return found[-1].upper() if found else None


def xla_uses_avx512(flags, cap):
  """Whether XLA may emit AVX-512 here: the CPU has it and no cap forbids."""
  if "avx512f" not in flags:
    return False
  return cap is None or cap not in _XLA_ISAS or _XLA_ISAS.index(cap) >= 3


def onednn_isa_cap(value=None):
  """The ISA ONEDNN_MAX_CPU_ISA caps oneDNN's kernels at (upper case), or
  None (no cap)."""
  value = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if value is None else value
  value = value.strip().upper()
  return None if value in ("", "ALL", "DEFAULT") else value


def native_bfloat16(flags, cap):
  """Whether oneDNN (TensorFlow's CPU matmuls) may multiply bfloat16
  natively here: the CPU has AVX512_BF16 or AMX-BF16 and no cap forbids."""
  if not {"avx512_bf16", "amx_bf16"} & set(flags):
    return False
  return cap is None or any(isa in cap for isa in ("BF16", "AMX", "FP16",
                                                    "AVX10"))


def check_precision(precision):
  """Raises UserError for a train.precision this machine cannot run well;
  returns a line to log for one it runs slower (else None).

  Measured on a 2-core AMD EPYC Zen 4, TensorFlow 2.21, configs/small.py
  (docs/results.md, "Mixed precision"): mixed_bfloat16 with oneDNN kept
  from AVX512_BF16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE: bfloat16 emulated)
  trained at 0.42x float32's speed, and with oneDNN kept to AVX2 the first
  bfloat16 matmul aborted the process; mixed_float16 on the CPU trained at
  0.94x float32's speed (no CPU here multiplies float16 natively).
  """
  if precision == "float32" or tf.config.list_logical_devices("GPU"):
    return None
  name, flags = cpu()
  if precision == "mixed_bfloat16":
    cap = onednn_isa_cap()
    if not native_bfloat16(flags, cap):
      why = (f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN from it" if cap and
             {"avx512_bf16", "amx_bf16"} & set(flags) else
             f"CPU '{name}' has neither AVX512_BF16 nor AMX")
      raise UserError(
          f"config train.precision=mixed_bfloat16 needs a CPU that "
          f"multiplies bfloat16 natively and {why}: emulated bfloat16 "
          "trained at 0.42x float32's speed (and oneDNN kept to AVX2 "
          "aborted); use train.precision=float32")
    return None
  return (f"train.precision=mixed_float16 on CPU '{name}': no faster than "
          "float32 on a CPU (measured 0.94x); it is meant for GPUs")


def choose(config):
  """(jit_compile, reason) for this config on this machine."""
  if config.train.jit_compile is not None:
    return bool(config.train.jit_compile), "set by train.jit_compile"
  if config.train.distribute != "none":
    return False, (f"train.distribute={config.train.distribute}: Keras's "
                   "XLA steps cannot read the replicas' variables")
  if config.data.mode != "stream":
    return False, ("sentence mode: each batch shape would compile anew")
  if config.model.softmax == "adaptive":
    return False, ("adaptive softmax: its clusters' sizes change with every "
                   "batch, which XLA cannot compile")
  if tf.config.list_logical_devices("GPU"):
    return True, "stream mode on a GPU"
  name, flags = cpu()
  if config.train.precision == "mixed_bfloat16":
    return False, (f"mixed_bfloat16 on CPU '{name}': XLA measured "
                   "0.72-0.74x as fast")
  if config.train.precision == "mixed_float16":
    return False, (f"mixed_float16 on CPU '{name}': not measured with XLA "
                   "(a precision for GPUs)")
  cap = xla_isa_cap()
  if xla_uses_avx512(flags, cap):
    if config.model.weight_drop:
      return False, (f"stream mode, CPU '{name}' with AVX-512, weight drop: "
                     "XLA measured 0.27x as fast")
    if config.model.hidden_size > XLA_MAX_UNITS:
      return False, (f"stream mode, CPU '{name}' with AVX-512, "
                     f"{config.model.hidden_size} units: XLA measured "
                     f"0.87-1.0x as fast above {XLA_MAX_UNITS}")
    return True, (f"stream mode, CPU '{name}' with AVX-512: XLA measured "
                  "1.07x faster")
  if "avx512f" in flags:
    return False, (f"stream mode, CPU '{name}', XLA capped at {cap}: the cap "
                   "does not reach XLA's matrix products, only XLA-off steps "
                   "keep to it")
  why = "AVX2" if "avx2" in flags else "no AVX2"
  return False, (f"stream mode, CPU '{name}' without AVX-512 for XLA ({why}): "
                 "XLA measured 0.83-0.86x as fast")


def jit_compile(config):
  """Whether to compile training and evaluation steps with XLA."""
  return choose(config)[0]


def gate_matmuls(config):
  """Whether kerasrnn's LSTM/GRU multiply by each gate's block of the
  recurrent kernel separately: where XLA is off (kerasrnn/models/recurrent.py)."""
  return not jit_compile(config)


def steps_per_execution(config):
  """train.steps_per_execution; 1 under tf.distribute, where Keras's loop of
  several steps fails (TF 2.21: 'You must feed a value for placeholder')."""
  return 1 if config.train.distribute != "none" else (
      config.train.steps_per_execution)


def compile_options(config):
  """`keras.Model.compile` arguments of training and evaluation."""
  return dict(jit_compile=jit_compile(config),
              steps_per_execution=steps_per_execution(config))


def describe(config):
  """One line for the training log: what runs and why, and how to change it."""
  on, reason = choose(config)
  matmuls = ("" if config.model.cell == "transformer" else
             "one recurrent matmul "
             f"{'per gate' if gate_matmuls(config) else 'for all gates'}; ")
  precision = ("" if config.train.precision == "float32" else
               f"{config.train.precision}; ")
  return (f"fast path: {precision}XLA {'on' if on else 'off'} ({reason}); "
          f"--config.train.jit_compile={not on} to change it; "
          f"{matmuls}{steps_per_execution(config)} steps per execution")


def build_model(config, vocab_size, **kwargs):
  """`kerasrnn.models.build_model` with this machine's choice of the
  recurrent matmuls' form (`gate_matmuls`), stateful in both modes (sentence
  mode's chunks carry the state), in train.precision: what training,
  evaluation and the benchmarks run. Other keyword arguments go to
  `build_model`."""
  from kerasrnn.models import build_model as build  # pylint: disable=g-import-not-at-top
  kwargs.setdefault("stateful", True)
  kwargs.setdefault("precision", config.train.precision)
  warning = check_precision(kwargs["precision"])
  if warning:
    logging.warning("%s", warning)
  return build(config, vocab_size, gate_matmuls=gate_matmuls(config), **kwargs)
