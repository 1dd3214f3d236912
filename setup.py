"""Packaging; the metadata and requirements are in setup.cfg.

The shipped configs (top-level `configs/`) are installed as
`kerasrnn.configs`, so that `--config=configs/small.py` works after
`pip install` from any directory (`kerasrnn.cli.config_path`).
"""
import setuptools

setuptools.setup(
    packages=(setuptools.find_packages(include=["kerasrnn", "kerasrnn.*"])
              + ["kerasrnn.configs"]),
    package_dir={"kerasrnn.configs": "configs"})
