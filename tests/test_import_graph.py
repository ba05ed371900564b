"""The package has no import cycle and only the `train` command imports the trainer
(scripts/dev/import_graph.py reads every import from the source, function-level ones included)."""

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
    assert "finetune.training.assemble" in graph["finetune.evaluation.score_run"]


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
