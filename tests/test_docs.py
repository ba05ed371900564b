"""Docs that cannot rot: every `finetune ...` command shown in README.md, docs/*.md and the Makefile
names a command and options the CLI has (checked with click's own parser, nothing is run), every
relative link reaches a file (and heading), and every scripts/, docs/ or test file named exists, as
does every file docs/architecture.md names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
from conftest import ROOT
from typer._click.exceptions import BadOptionUsage, UsageError  # typer parses with its own copy of click

from finetune.cli import app
from finetune.commands.run_arguments import bare_resume

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "scripts" / "README.md"]
# Files whose text names scripts by path (recipes' `# needs:` lines, the scripts' own usage notes).
MENTIONS = [*PAGES, ROOT / "Makefile", *sorted((ROOT / "finetune" / "recipes").glob("*.yaml")),
            *sorted(p for p in (ROOT / "scripts").rglob("*") if p.suffix in (".py", ".sh"))]
CODE_FENCE = re.compile(r"^\s*```")
# A line or code span that runs finetune: the program itself, `python -m finetune`, a launcher's
# `-m finetune`, or finetune at the end of a pipe; env assignments (`OMP_NUM_THREADS=1 `) may lead.
RUNS_FINETUNE = re.compile(r"^\s*(?:[A-Z_]+=\S*\s+)*(?:\S*/)?(?:finetune|python3?|accelerate|torchrun)\s|\|\s*finetune\s")
PLACEHOLDER = "..."  # "the rest of the command", as in `finetune --debug ...`


def _shown_code(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each line of a fenced block and each inline code span outside one."""
    shown, fenced, lang, continued = [], False, "", ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if CODE_FENCE.match(line):
            fenced, lang = not fenced, line.strip().strip("`")
            continue
        if fenced:
            if line.endswith("\\"):  # a shell line continued on the next
                continued += line[:-1]
            else:  # a shell line; or a tree, diagram or YAML whose comments quote commands
                if lang not in ("yaml", "json"):
                    shown.append((number, continued + line))
                shown += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
                continued = ""
        elif path.suffix == ".md":
            shown += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
        else:  # the Makefile: its recipe lines
            shown.append((number, line.replace("$(BIN)/", "")))
    return shown


def _finetune_argvs(text: str) -> list[tuple[list[str], list[str]]]:
    """(launcher's args, finetune's args) of each finetune invocation in one shell line."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found, segment = [], []
    for token in [*tokens, ";"]:
        if token and set(token) <= set("|&;()<>"):  # a pipe, a list, a redirection: a new segment
            found += _invocation(segment)
            segment = [] if token not in ("<", ">", ">>", "2>") else ["<redirect>"]
        elif segment[-1:] == ["<redirect>"]:
            segment.pop()  # the redirection's file
        else:
            segment.append(token)
    return found


def _invocation(segment: list[str]) -> list[tuple[list[str], list[str]]]:
    words = [w for w in segment if w != "<redirect>"]
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    if words and words[0].rsplit("/", 1)[-1] == "finetune":
        return [([], words[1:])]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "finetune":
            return [(words[:i], words[i + 2:])]
    return []


def _without_brackets(args: list[str]) -> list[str]:
    """`[--private]`, `[--layer L]`, `[overrides]` as the options and values they stand for."""
    return [a.strip("[]") for a in args if a.strip("[]") and a.strip("[]") != PLACEHOLDER]


def _alternatives(args: list[str]) -> list[list[str]]:
    """Prose's `finetune config show / validate / schema`: one command line per alternative."""
    if "/" not in args:
        return [args]
    first = args.index("/") - 1
    return [args[:first] + [word] for word in args[first:] if word != "/"]


def _check_finetune_args(args: list[str]) -> str | None:
    """None when click accepts the command path and every option; else what it refused."""
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="finetune")
    args = bare_resume(_without_brackets(args))  # what main() does before click sees them
    while True:
        try:
            _, rest, _ = command.make_parser(ctx).parse_args(list(args))
        except BadOptionUsage as refused:
            if "requires an argument" in str(refused) and args and args[-1].startswith("-"):
                return None  # prose naming an option without its value: `finetune eval --checkpoint`
            return str(refused)
        except UsageError as refused:
            return str(refused)
        if not hasattr(command, "get_command"):  # a command, not a group: `rest` is what no argument took
            return f"{ctx.command_path}: unexpected arguments {rest}" if rest else None
        if not rest:
            return None
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            return f"{ctx.command_path}: no command {rest[0]!r} (has {', '.join(command.list_commands(ctx))})"
        ctx = sub.context_class(sub, info_name=rest[0], parent=ctx)
        command, args = sub, rest[1:]


def _check_launcher_args(launcher: list[str]) -> str | None:
    """`accelerate launch OPTIONS -m finetune` / `torchrun OPTIONS -m finetune`: each option is one
    the launcher's own argument parser knows."""
    words = [w for w in launcher if not re.fullmatch(r"[A-Z_]+=\S*", w)]
    if words[:2] == ["accelerate", "launch"]:
        from accelerate.commands.launch import launch_command_parser

        parser, given = launch_command_parser(), words[2:]
    elif words[:1] == ["torchrun"]:
        from torch.distributed.run import get_args_parser

        parser, given = get_args_parser(), words[1:]
    else:
        return None  # python / python3 / .venv/bin/python: nothing to check before -m
    known = {opt for action in parser._actions for opt in action.option_strings}
    unknown = [g for g in given if g.startswith("-") and g.split("=")[0] not in known]
    return f"{words[0]} has no option {unknown}" if unknown else None


def _shown_commands() -> list[tuple[str, list[str], list[str]]]:
    shown = []
    for path in [*PAGES, ROOT / "Makefile"]:
        for number, text in _shown_code(path):
            if RUNS_FINETUNE.search(text):
                where = f"{path.relative_to(ROOT)}:{number}: {text.strip()}"
                try:
                    shown += [(where, launcher, each) for launcher, args in _finetune_argvs(text)
                              for each in _alternatives(args)]
                except ValueError as unparsable:  # unbalanced quotes: not a line a shell would run
                    shown.append((where, [], [f"<{unparsable}>"]))
    return shown


def test_every_finetune_command_shown_exists_with_its_options():
    shown = _shown_commands()
    refused = [f"{where}\n    {why}" for where, launcher, args in shown
               for why in (_check_launcher_args(launcher), _check_finetune_args(args)) if why]
    assert not refused, "\n".join(refused)
    checked = [args for _, _, args in shown if _without_brackets(args)]
    print(f"checked {len(checked)} finetune commands in README.md, docs/*.md and the Makefile")
    assert len(checked) >= 80, len(checked)  # the pages show about 100: a parser gone blind fails here


@pytest.mark.parametrize("text, why", [
    ("finetune train --config x.yaml --resum", "No such option"),
    ("finetune evaluate runs/x", "no command 'evaluate'"),
    ("finetune config shw quickstart", "no command 'shw'"),
    ("cat a.txt | finetune predict RUN_DIR - --outptu answers.jsonl", "No such option"),
    ("OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m finetune train --config x --overwrit", "No such option"),
    ("finetune plot RUN_DIR another", "unexpected arguments"),
])
def test_a_renamed_command_or_option_is_refused(text, why):
    [(launcher, args)] = _finetune_argvs(text)
    assert why in (_check_finetune_args(args) or "")


def test_a_launcher_option_is_checked_with_the_launchers_parser():
    [(launcher, _)] = _finetune_argvs("torchrun --nproc-per-node 2 --nodes_count 2 -m finetune train")
    assert "--nodes_count" in (_check_launcher_args(launcher) or "")
    [(launcher, _)] = _finetune_argvs("accelerate launch --config_file multi_gpu.yaml -m finetune train")
    assert _check_launcher_args(launcher) is None


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if CODE_FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken, count = [], 0
    for page in PAGES:
        prose = "\n".join(line for _, line in _prose_lines(page))
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            count += 1
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    assert count >= 30, count


def _prose_lines(page: Path) -> list[tuple[int, str]]:
    lines, fenced = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if CODE_FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _named_paths(prefix: str, files: list[Path]) -> list[tuple[str, str]]:
    """(where, path) of every `prefix...` path the files name, trailing punctuation dropped."""
    named = []
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            for path in re.findall(rf"(?<![\w/.$-]){prefix}[\w./*-]*", line):
                named.append((f"{file.relative_to(ROOT)}:{number}", path.rstrip(".,:;")))
    return named


@pytest.mark.parametrize("prefix", ["scripts/", "docs/"])
def test_every_scripts_or_docs_path_named_exists(prefix):
    named = _named_paths(prefix, MENTIONS)
    missing = [f"{where}: {path}" for where, path in named
               if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists())]
    assert not missing, "\n".join(missing)
    assert len(named) >= 20, len(named)


def test_every_test_file_the_docs_name_exists():
    named = {name for page in PAGES for name in re.findall(r"\btest_\w+\.py\b", page.read_text(encoding="utf-8"))}
    missing = sorted(name for name in named - {"test_x.py"} if not (ROOT / "tests" / name).exists())
    assert not missing, missing


def test_every_file_the_architecture_page_names_exists():
    """docs/architecture.md's `where each behaviour lives` names files of the package (relative to
    finetune/) and of the repository: a moved module must move there too."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([^`\s]+/[^`\s]*)`", page)) - {"tests/test_x.py"}  # x: any file
    missing = sorted(path for path in named if not any(
        list(base.glob(path)) if "*" in path else (base / path).exists() for base in (ROOT / "finetune", ROOT)))
    assert not missing, missing
    assert len(named) >= 50, len(named)
