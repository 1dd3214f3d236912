"""train.distribute: what is not built yet is refused with one clear line."""
import pytest

from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError


@pytest.mark.parametrize("overrides,message", [
    ({"train.distribute": "mirrored"}, "needs data.mode=sentence"),
    ({"train.distribute": "mirrored", "data.mode": "sentence"},
     "'mirrored' is not supported yet"),
    ({"train.distribute": "multi_worker", "data.mode": "sentence"},
     "'multi_worker' is not supported yet"),
])
def test_unsupported_layouts_are_refused(overrides, message):
  with pytest.raises(UserError, match=message):
    config_lib.validate(smoke_config("", overrides=overrides))
