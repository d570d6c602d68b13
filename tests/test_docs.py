"""
README.md and docs/*.md stay true (the checks are in ``tests/doc_check.py``):

- every command line of their shell code blocks that runs a script of tools/ or bench/
  (``python tools/...``, ``.venv/bin/python tools/...``; backslash continuations joined) passes
  that script's argument parser, read from its ``--help`` in a subprocess (tests never load
  tools/ by path), with the config file the tools need;
- every ``key=value`` override of such a command applies to the config it names
  (``LazyConfig.load`` + ``LazyConfig.apply_overrides``), and its key already exists in that
  config or is an argument of the LazyCall holding it: nothing is trained or run;
- a Python block whose first line is ``# <name>.py`` is a config file of the docs: it must
  load, and commands may name it as ``--config-file <name>.py``; every Python block compiles;
- every repository path, relative link (with its #anchor) and ``yolox_d2.*`` name exists.
"""
import functools
import importlib
import os
import re
import subprocess
import sys

import pytest

from detectron2.config import LazyConfig

from .conftest import REPO_ROOT
from .doc_check import (
    Command,
    CommandLineSpec,
    check_arguments,
    code_blocks,
    commands,
    heading_anchors,
    override_problems,
    parse_help,
)

DOC_FILES = ["README.md"] + sorted(f"docs/{n}" for n in os.listdir(REPO_ROOT / "docs") if n.endswith(".md"))
TOP_LEVEL = ("configs", "tools", "yolox_d2", "tests", "bench", "dev", "docs")
PATH_RE = re.compile(r"(?<![\w./~$-])((?:%s)/[\w.*/-]*)" % "|".join(TOP_LEVEL))
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PYTHON_NAME_RE = re.compile(r"(?<![\w./-])(yolox_d2(?:\.[A-Za-z_]\w*)+)")
CONFIG_FILE_RE = re.compile(r"^#\s*([\w-]+\.py)\b")


def _text(doc: str) -> str:
    return (REPO_ROOT / doc).read_text(encoding="utf-8")


def _all_commands():
    return [(doc, command) for doc in DOC_FILES for command in commands(_text(doc))]


COMMANDS = _all_commands()


@functools.lru_cache(maxsize=None)
def script_spec(script: str) -> CommandLineSpec:
    """The command line of a repository script, from ``python <script> --help`` run as a user would."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, script, "--help"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{script} --help failed:\n{proc.stderr[-2000:]}"
    return parse_help(proc.stdout)


@pytest.fixture(scope="module")
def doc_config_files(tmp_path_factory):
    """``{name: path}`` of the config files written in the docs' Python blocks (``# <name>.py``)."""
    folder = tmp_path_factory.mktemp("doc_configs")
    found = {}
    for doc in DOC_FILES:
        for block in code_blocks(_text(doc)):
            match = CONFIG_FILE_RE.match(block.lines[0].strip()) if block.language == "python" and block.lines else None
            if match:
                name = match.group(1)
                assert name not in found, f"{doc}:{block.line}: a second config file named {name}"
                (folder / name).write_text("\n".join(block.lines) + "\n")
                found[name] = str(folder / name)
    return found


def _problems(command: Command, doc_configs) -> list:
    spec = script_spec(command.script)
    problems, given, overrides = check_arguments(spec, command.args)
    config = (given.get("--config-file") or [None])[0]
    if config is None:
        if command.script.startswith("tools/") and "--config-file" in spec.options:
            problems.append("no --config-file")
        if overrides:
            problems.append("config overrides without --config-file")
        return problems
    path = REPO_ROOT / config
    if not path.is_file():
        if config not in doc_configs:
            return problems + [f"config file {config} does not exist (nor is it a config file of the docs)"]
        path = doc_configs[config]
    return problems + override_problems(str(path), overrides)


def test_the_docs_show_the_command_lines_of_every_tool():
    shown = {command.script for _, command in COMMANDS}
    tools = {f"tools/{n}" for n in os.listdir(REPO_ROOT / "tools") if n.endswith(".py")}
    assert tools <= shown, f"tools never shown in README.md / docs: {sorted(tools - shown)}"


@pytest.mark.parametrize(
    "doc,command", COMMANDS, ids=[f"{doc}:{command.line}" for doc, command in COMMANDS]
)
def test_command_line_is_valid(doc, command, doc_config_files):
    problems = _problems(command, doc_config_files)
    assert not problems, f"{doc}, line {command.line}: {command.text}\n  " + "\n  ".join(problems)


def test_config_files_of_the_docs_load(doc_config_files):
    for name, path in doc_config_files.items():
        cfg = LazyConfig.load(path)
        assert "model" in cfg and "train" in cfg, name


@pytest.mark.parametrize("doc", DOC_FILES)
def test_python_blocks_compile(doc):
    for block in code_blocks(_text(doc)):
        if block.language == "python":
            compile("\n".join(block.lines), f"{doc}:{block.line}", "exec")


@pytest.mark.parametrize("doc", DOC_FILES)
def test_repository_paths_and_links_exist(doc):
    text = _text(doc)
    missing = []
    for path in sorted(set(PATH_RE.findall(text))):
        path = path.rstrip(".,:;")
        if not (list(REPO_ROOT.glob(path)) if "*" in path else (REPO_ROOT / path).exists()):
            missing.append(path)
    folder = (REPO_ROOT / doc).parent
    for target in LINK_RE.findall(text):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (folder / file_part).resolve() if file_part else REPO_ROOT / doc
        if not linked.exists():
            missing.append(f"link {target}")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
            missing.append(f"link {target}: no such heading")
    assert not missing, f"{doc} names what does not exist: {missing}"


@pytest.mark.parametrize("doc", DOC_FILES)
def test_yolox_d2_names_exist(doc):
    unresolved = []
    for name in sorted(set(PYTHON_NAME_RE.findall(_text(doc)))):
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:n]))
                break
            except ImportError:
                continue
        try:
            for attribute in parts[n:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            unresolved.append(name)
    assert not unresolved, f"{doc} names what yolox_d2 does not have: {unresolved}"


# ---- the checks themselves: they must catch what they claim to ----------------------------

HELP = """usage: tool.py [-h] --config-file CONFIG_FILE [--mode {raw,nms}] [--size PX [PX ...]]
               [--verify] [--opts ...]

options:
  -h, --help            show this help message and exit
  --config-file CONFIG_FILE
                        a config
  --mode {raw,nms}      outputs
  --size PX [PX ...]    input size
  --verify              compare
  --opts ...            config overrides key=value
"""


def test_help_parser_reads_options_choices_and_required():
    spec = parse_help(HELP)
    assert set(spec.options) == {"-h", "--help", "--config-file", "--mode", "--size", "--verify", "--opts"}
    assert spec.options["--mode"].choices == ("raw", "nms")
    assert (spec.options["--verify"].nargs, spec.options["--size"].nargs, spec.options["--opts"].nargs) == (0, "+", "...")
    assert spec.required == {"--config-file"} and not spec.remainder


def test_argument_check_catches_a_broken_flag_a_bad_choice_and_a_missing_option():
    spec = parse_help(HELP)
    ok, given, overrides = check_arguments(spec, ["--config-file", "c.py", "--size", "640", "480", "--opts", "a.b=1"])
    assert ok == [] and given["--size"] == ["640", "480"] and overrides == ["a.b=1"]
    problems, _, _ = check_arguments(spec, ["--config-fil", "c.py", "--mode", "decoded"])
    assert any("unknown option '--config-fil'" in p for p in problems)
    assert any("'decoded': not one of raw, nms" in p for p in problems)
    assert any("required option --config-file is missing" in p for p in problems)


def test_detectron2_style_trailing_overrides(doc_config_files):
    spec = script_spec("tools/lazyconfig_train_net.py")
    assert spec.remainder and spec.positionals == ["opts"] and "--num-gpus" in spec.options
    problems, _, overrides = check_arguments(spec, ["--config-file", "configs/yolox_s.py", "--eval-only", "train.device=cpu"])
    assert problems == [] and overrides == ["train.device=cpu"]
    # a flag after the overrides is swallowed by them (argparse.REMAINDER): reported
    command = Command(1, "tools/lazyconfig_train_net.py", ["--config-file", "configs/yolox_s.py", "train.device=cpu", "--resume"], "")
    assert any("'--resume' is not a key=value" in p for p in _problems(command, doc_config_files))


def test_override_check_catches_unknown_keys_and_accepts_lazycall_arguments():
    config = str(REPO_ROOT / "configs" / "yolox_nano.py")
    assert override_problems(config, ["model.test_score_thresh=0.001", "model.backbone.bottom_up.freeze_at=2"]) == []
    assert override_problems(config, ["dataloader.train.dataset.cache_images=True", "train.device=cpu"]) == []
    (problem,) = override_problems(config, ["model.test_score_threshold=0.001"])
    assert "model has no key 'test_score_threshold'" in problem
    (problem,) = override_problems(config, ["model.backbone.bottom_up.freez_at=2"])
    assert "no key 'freez_at'" in problem
