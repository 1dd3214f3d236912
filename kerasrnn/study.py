"""Trains several configs one after another into one directory, resumably."""
import importlib.util
import os

from absl import logging

from kerasrnn.errors import UserError
from kerasrnn.report import report
from kerasrnn.training import train


def load_variants(config_file, names=None):
  """{variant: config} of a config file with a VARIANTS table.

  Args:
    config_file: e.g. configs/study.py; it must define VARIANTS and
      get_config(variant).
    names: the variants to take (default: all, in the file's order).
  """
  if not os.path.isfile(config_file):
    raise UserError(f"config file {config_file} does not exist")
  spec = importlib.util.spec_from_file_location("study_config", config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  variants = getattr(module, "VARIANTS", None)
  if not variants:
    raise UserError(f"{config_file} defines no VARIANTS to study")
  names = names or list(variants)
  unknown = [n for n in names if n not in variants]
  if unknown:
    raise UserError(f"unknown variants {', '.join(unknown)} (known: "
                    f"{', '.join(variants)})")
  return {n: module.get_config(n) for n in names}


def run_study(configs, workdir, report_dir=None):
  """Trains each config into workdir/<name>, then writes the report.

  Finished runs are skipped and an interrupted one resumes, so the same
  command continues a study where it stopped.

  Args:
    configs: {run name: config}.
    workdir: the study's directory.
    report_dir: where the report goes (default workdir/report).

  Returns:
    The report's summary rows.
  """
  for name, config in configs.items():
    logging.info("study: training %s", name)
    train.train_and_evaluate(config, os.path.join(workdir, name))
  runs = ",".join(os.path.join(workdir, name) for name in configs)
  return report.write_report(runs, report_dir or os.path.join(workdir, "report"))
