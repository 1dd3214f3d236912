"""Text from TensorFlow Datasets, for the token store (data.source=tfds)."""
from kerasrnn.errors import UserError

SPLITS = ("train", "valid", "test")


def _import_tfds():
  """tensorflow_datasets with kerasrnn's ptb_text builder registered."""
  # pylint: disable=g-import-not-at-top,unused-import
  try:
    import tensorflow_datasets.core  # TFDS hides this module's import errors.
    import tensorflow_datasets as tfds
    from kerasrnn.data import ptb_tfds
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(
        f"tensorflow-datasets cannot be imported ({str(e).splitlines()[0]}); "
        "with tensorflow<2.20 install tensorflow-metadata<1.18 (README, "
        "'Supported versions')") from None
  return tfds


def split_blocks(data, block_bytes):
  """{split: a function returning an iterator over blocks of examples' text
  (bytes)}; data.dir serves as TFDS's manual directory."""
  tfds = _import_tfds()
  names = data.tfds_splits.split(",")
  if len(names) != 3:
    raise UserError("config data.tfds_splits must name three TFDS splits "
                    "(train,valid,test), e.g. 'train,validation,test'")
  download_config = tfds.download.DownloadConfig(manual_dir=data.dir or None)
  try:
    datasets = tfds.load(
        data.tfds_name, split=names, data_dir=data.tfds_data_dir or None,
        download_and_prepare_kwargs={"download_config": download_config})
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"cannot load TFDS dataset {data.tfds_name!r} "
                    f"({str(e).splitlines()[0]}); offline, put its files in "
                    "--config.data.dir (TFDS's manual directory)") from None

  def examples(ds):
    try:
      yield from tfds.as_numpy(ds)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"cannot read TFDS dataset {data.tfds_name!r} "
                      f"({' '.join(str(e).split())[:200]}); prepare it again "
                      "(delete its folder in data.tfds_data_dir)") from None

  def blocks(ds):
    block, size = [], 0
    for example in examples(ds):
      if data.tfds_text_key not in example:
        raise UserError(
            f"TFDS dataset {data.tfds_name!r} has no feature "
            f"data.tfds_text_key={data.tfds_text_key!r}; its features: "
            f"{', '.join(sorted(example))}")
      line = example[data.tfds_text_key]
      block.append(line)
      size += len(line)
      if size >= block_bytes:
        yield block
        block, size = [], 0
    if block:
      yield block

  return {split: (lambda ds=ds: blocks(ds))
          for split, ds in zip(SPLITS, datasets)}
