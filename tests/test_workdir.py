import pytest

from conftest import smoke_config
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError
from kerasrnn.training import workdir as wd


def test_check_accepts_the_same_run_and_other_verbosity_or_xla(tmp_path):
  config = smoke_config("")
  assert not wd.check(str(tmp_path), config)
  wd.claim(str(tmp_path), config, Vocabulary.build([["a"]]))
  config.train.verbose = 2
  config.train.jit_compile = False
  assert wd.check(str(tmp_path), config)


def test_check_refuses_a_different_run(tmp_path):
  config = smoke_config("")
  wd.claim(str(tmp_path), config, Vocabulary.build([["a"]]))
  config.model.dropout = 0.5
  with pytest.raises(UserError, match="model.dropout: 0.0 -> 0.5"):
    wd.check(str(tmp_path), config)
