"""The package's layers import downwards only: data → models → training → ..."""
import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "kerasrnn")


def _part(module):
  """kerasrnn.training.train -> 'training'; kerasrnn.config -> 'config'."""
  return module.split(".")[1]


def _imports():
  """{part: set of the kerasrnn parts its modules import}."""
  graph = {}
  for directory, _, files in os.walk(PACKAGE):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(directory, name)
      module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
      module = module.removesuffix(".__init__")
      if module == "kerasrnn":
        continue
      tree = ast.parse(open(path, encoding="utf-8").read())
      for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
          names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "kerasrnn":
          names = [f"kerasrnn.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
          names = [node.module]
        for imported in names:
          if imported.startswith("kerasrnn.") and (
              _part(imported) != _part(module)):
            graph.setdefault(_part(module), set()).add(_part(imported))
  return graph


def test_models_import_nothing_from_training_serving_or_report():
  # Nor from fast_path: the graph build_model returns is what its caller
  # asks for, not what the CPU it runs on would choose.
  assert not _imports().get("models", set()) & {
      "training", "serving", "report", "study", "cli", "fast_path"}


def test_no_import_cycle_between_parts():
  graph = _imports()
  state = {}

  def visit(part, path):
    assert state.get(part) != "open", " -> ".join(path + [part])
    if state.get(part) == "done":
      return
    state[part] = "open"
    for child in sorted(graph.get(part, ())):
      visit(child, path + [part])
    state[part] = "done"

  for part in sorted(graph):
    visit(part, [])


def test_report_and_serving_read_runs_through_the_workdir_module():
  graph = _imports()
  assert "workdir" in graph["report"] and "training" not in graph["report"]
  assert "workdir" in graph["serving"]
