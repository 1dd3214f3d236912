import re

import pytest

from conftest import smoke_config
from kerasrnn import fast_path
from kerasrnn.errors import UserError

XEON = ("Intel(R) Xeon(R) CPU", frozenset({"avx2", "fma", "avx512f"}))
EPYC = ("AMD EPYC 7B13", frozenset({"avx2", "fma"}))


@pytest.fixture
def machine(monkeypatch):
  """Makes fast_path see the CPU and XLA_FLAGS a test gives."""

  def set_machine(cpu, xla_flags=""):
    monkeypatch.setattr(fast_path, "cpu", lambda: cpu)
    monkeypatch.setenv("XLA_FLAGS", xla_flags)

  return set_machine


def test_xla_only_in_stream_mode_on_avx512(machine):
  config = smoke_config("")
  assert config.train.jit_compile is None
  machine(XEON)
  assert fast_path.choose(config) == (
      True, "stream mode, CPU 'Intel(R) Xeon(R) CPU' with AVX-512: "
      "XLA measured 1.07x faster")
  machine(EPYC)
  on, reason = fast_path.choose(config)
  assert not on and "'AMD EPYC 7B13' without AVX-512 for XLA (AVX2)" in reason
  machine(XEON)
  config.data.mode = "sentence"
  assert fast_path.choose(config)[0] is False


def test_xla_only_for_narrow_layers_without_weight_drop(machine):
  config = smoke_config("")
  machine(XEON)
  config.model.hidden_size = fast_path.XLA_MAX_UNITS
  assert fast_path.jit_compile(config)
  config.model.hidden_size = fast_path.XLA_MAX_UNITS + 1
  on, reason = fast_path.choose(config)
  assert not on and f"{fast_path.XLA_MAX_UNITS + 1} units" in reason
  config.model.hidden_size = 100
  config.model.weight_drop = 0.2
  on, reason = fast_path.choose(config)
  assert not on and "weight drop" in reason


def test_an_isa_cap_below_avx512_in_xla_flags_turns_xla_off(machine):
  config = smoke_config("")
  machine(XEON, "--xla_cpu_enable_fast_math=false --xla_cpu_max_isa=avx2")
  on, reason = fast_path.choose(config)
  assert not on and "XLA capped at AVX2" in reason
  machine(XEON, "--xla_cpu_max_isa=AVX512_VNNI")
  assert fast_path.jit_compile(config)
  assert fast_path.xla_isa_cap("--xla_cpu_max_isa=AVX2 --xla_cpu_max_isa=SSE4_2") == "SSE4_2"
  assert fast_path.xla_isa_cap("") is None


def test_the_config_overrides_the_machine_and_the_log_line_says_how(machine):
  config = smoke_config("")
  machine(EPYC)
  config.train.jit_compile = True
  assert fast_path.choose(config) == (True, "set by train.jit_compile")
  config.data.mode = "sentence"
  assert fast_path.jit_compile(config)
  config.train.jit_compile = False
  machine(XEON)
  assert fast_path.describe(config) == (
      "fast path: XLA off (set by train.jit_compile); "
      "--config.train.jit_compile=True to change it; "
      "one recurrent matmul per gate; 32 steps per execution")


# The first lines of two real machines' /proc/cpuinfo (flags shortened).
_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma
bogomips\t: 4899.99

processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_cpuinfo_gives_the_first_processors_name_and_flags():
  assert fast_path.parse_cpuinfo(_CPUINFO) == (
      "AMD EPYC 7B13", frozenset({"fpu", "sse2", "avx", "avx2", "fma"}))
  assert fast_path.parse_cpuinfo("processor : 0\n") == ("unknown",
                                                         frozenset())


@pytest.mark.parametrize("cpu, per_gate", [(XEON, False), (EPYC, True)])
def test_recurrent_layers_multiply_per_gate_where_xla_is_off(machine, cpu,
                                                              per_gate):
  from kerasrnn.models import build_model, rnn_layers  # pylint: disable=g-import-not-at-top
  config = smoke_config("")
  machine(cpu)
  assert fast_path.jit_compile(config) is not per_gate
  layers = rnn_layers(fast_path.build_model(config, 50, stock_layers=False))
  assert layers and all(l.gate_matmuls is per_gate for l in layers)
  # The models package itself builds what it is told, whatever the CPU.
  for told in (True, False):
    layers = rnn_layers(build_model(config, 50, stock_layers=False,
                                    gate_matmuls=told))
    assert all(l.gate_matmuls is told for l in layers)
  assert ("one recurrent matmul per gate" in fast_path.describe(config)) is (
      per_gate)
  config.model.cell = "transformer"  # No recurrent matmuls to speak of.
  assert "recurrent matmul" not in fast_path.describe(config)


ZEN4 = ("AMD EPYC 9B14", frozenset({"avx2", "fma", "avx512f",
                                     "avx512_bf16"}))


def test_mixed_bfloat16_needs_a_cpu_that_multiplies_bfloat16(machine,
                                                              monkeypatch):
  config = smoke_config("", overrides={"train.precision": "mixed_bfloat16"})
  monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
  machine(ZEN4)
  assert fast_path.check_precision(config.train.precision) is None
  for cpu in (XEON, EPYC):  # AVX-512 without BF16; AVX2 only.
    machine(cpu)
    with pytest.raises(UserError, match=re.escape(
        f"train.precision=mixed_bfloat16 needs a CPU that multiplies "
        f"bfloat16 natively and CPU '{cpu[0]}' has neither AVX512_BF16 nor "
        "AMX: emulated bfloat16 trained at 0.42x")):
      fast_path.check_precision(config.train.precision)
  machine(ZEN4)
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core")
  with pytest.raises(UserError, match="ONEDNN_MAX_CPU_ISA=AVX512_CORE keeps"):
    fast_path.check_precision(config.train.precision)
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
  assert fast_path.check_precision(config.train.precision) is None
  # No XLA under it on a CPU (measured slower), per-gate matmuls instead.
  on, reason = fast_path.choose(config)
  assert not on and "mixed_bfloat16 on CPU 'AMD EPYC 9B14'" in reason
  assert fast_path.gate_matmuls(config)
  assert fast_path.describe(config).startswith(
      "fast path: mixed_bfloat16; XLA off")


def test_float16_on_a_cpu_is_allowed_with_a_warning(machine):
  config = smoke_config("", overrides={"train.precision": "mixed_float16"})
  machine(EPYC)
  assert "meant for GPUs" in fast_path.check_precision(config.train.precision)
  config.train.precision = "float32"
  assert fast_path.check_precision(config.train.precision) is None
