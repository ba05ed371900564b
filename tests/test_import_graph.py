"""The package has no import cycle, no import from a lower layer into a higher one (LAYERS,
docs/architecture.md) and only the `train` command imports the trainer (scripts/dev/import_graph.py
reads every import from the source, function-level ones included)."""

from __future__ import annotations

from conftest import script_module


def _graph_module():
    return script_module("dev/import_graph")


def test_no_import_cycle():
    ig = _graph_module()
    assert ig.cycles(ig.import_graph()) == []


def test_only_the_train_command_imports_the_trainer():
    ig = _graph_module()
    graph = ig.import_graph()
    assert ig.importers(graph, "finetune.training.loop") == {"finetune.cli"}
    # `finetune eval` builds its accelerator and loader from assemble.py (a function-level import).
    assert "finetune.training.assemble" in graph["finetune.commands.evaluate"]


def test_no_import_points_up_the_layers():
    ig = _graph_module()
    assert ig.upward_imports(ig.import_graph()) == []


def test_every_top_level_package_has_a_layer():
    ig = _graph_module()
    graph = ig.import_graph()
    assert ig.unplaced(graph) == set()
    # Every name in LAYERS is a package or module that exists, each in one layer.
    named = [name for layer in ig.LAYERS for name in layer]
    assert sorted(named) == sorted({ig.top_level(module) for module in graph})


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    ig = _graph_module()
    package = tmp_path / "finetune"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from finetune.sub import b\n")
    (package / "a.py").write_text("from finetune.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def thing():\n    from .. import a\n")
    (package / "c.py").write_text("import finetune.a\n")
    graph = ig.import_graph(package)
    assert graph["finetune.sub.b"] == {"finetune.a"}
    assert ig.cycles(graph) == [["finetune.a", "finetune.sub.b"]]
    assert ig.importers(graph, "finetune.a") == {"finetune.c", "finetune.sub.b"}


def test_an_upward_function_level_import_is_found(tmp_path):
    ig = _graph_module()
    package = tmp_path / "finetune"
    for name in ("low", "high", "new"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "high" / "h.py").write_text("from finetune.low.l import thing\n")
    (package / "low" / "l.py").write_text("def thing():\n    from ..high import h\n")
    (package / "new" / "n.py").write_text("")
    layers = [("finetune",), ("low",), ("high",)]
    graph = ig.import_graph(package)
    assert ig.upward_imports(graph, layers) == [("finetune.low.l", "finetune.high.h")]
    assert ig.unplaced(graph, layers) == {"new"}
