"""
What ``tests/test_docs.py`` checks in README.md and docs/*.md, as plain functions (no test
here): the fenced code blocks of a Markdown file, the command lines in them that run a script
of the repository, the option list of a script read from its ``--help`` text, an argument list
checked against that option list, and the config overrides checked against a LazyConfig.
"""
import inspect
import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from omegaconf import DictConfig, ListConfig

from detectron2.config import LazyConfig
from detectron2.utils.registry import locate

__all__ = [
    "CodeBlock",
    "Command",
    "CommandLineSpec",
    "Option",
    "check_arguments",
    "code_blocks",
    "commands",
    "heading_anchors",
    "override_problems",
    "parse_help",
]

SHELL_LANGUAGES = ("", "bash", "sh", "shell", "console")
# a script of the repository run by a Python interpreter: python, python3, .venv/bin/python
SCRIPT_RE = re.compile(r"^(?:\./)?((?:tools|bench)/[\w-]+\.py)$")
INTERPRETER_RE = re.compile(r"^(?:\S*/)?python3?$")
ENV_ASSIGNMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_SEPARATORS = ("&&", "||", ";", "|")


@dataclass
class CodeBlock:
    language: str
    line: int  # line number of the block's first line of code (1-based)
    lines: List[str]


@dataclass
class Command:
    """One command line that runs a repository script: ``python <script> <args...>``."""

    line: int
    script: str
    args: List[str]
    text: str


@dataclass
class Option:
    nargs: object  # 0, an int, "?", "*", "+" or "..." (argparse.REMAINDER)
    choices: Optional[Tuple[str, ...]] = None


@dataclass
class CommandLineSpec:
    """The command line of a script as its ``--help`` describes it."""

    options: Dict[str, Option] = field(default_factory=dict)
    positionals: List[str] = field(default_factory=list)
    remainder: bool = False  # the last positional takes every remaining argument
    required: Set[str] = field(default_factory=set)


def code_blocks(text: str) -> List[CodeBlock]:
    """The fenced (```) code blocks of a Markdown text."""
    blocks: List[CodeBlock] = []
    current: Optional[CodeBlock] = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None:
            if stripped.startswith("```"):
                current = CodeBlock(stripped[3:].strip().lower(), number + 1, [])
        elif stripped == "```":
            blocks.append(current)
            current = None
        else:
            current.lines.append(line)
    if current is not None:
        raise ValueError(f"code block opened at line {current.line - 1} is never closed")
    return blocks


def _logical_lines(block: CodeBlock) -> Iterator[Tuple[int, str]]:
    """Shell lines of a block with backslash continuations joined: (first line number, text)."""
    parts: List[str] = []
    start = 0
    for offset, line in enumerate(block.lines):
        text = line.rstrip()
        if not parts:
            start = block.line + offset
            text = text.lstrip()
            if text.startswith("$ "):
                text = text[2:]
        if text.endswith("\\"):
            parts.append(text[:-1].strip())
            continue
        parts.append(text.strip())
        yield start, " ".join(parts)
        parts = []
    if parts:
        raise ValueError(f"line {start}: the last line of the block ends with a backslash")


def commands(text: str) -> List[Command]:
    """Every command line of the shell code blocks of ``text`` that runs a script of tools/ or bench/."""
    found: List[Command] = []
    for block in code_blocks(text):
        if block.language not in SHELL_LANGUAGES:
            continue
        for line, logical in _logical_lines(block):
            tokens = shlex.split(logical, comments=True)
            pipeline: List[List[str]] = [[]]
            for token in tokens:
                if token in SHELL_SEPARATORS:
                    pipeline.append([])
                else:
                    pipeline[-1].append(token)
            for words in pipeline:
                while words and ENV_ASSIGNMENT_RE.match(words[0]):
                    words = words[1:]
                if len(words) >= 2 and INTERPRETER_RE.match(words[0]):
                    match = SCRIPT_RE.match(words[1])
                    if match:
                        found.append(Command(line, match.group(1), words[2:], logical.strip()))
    return found


def _nargs(metavar: str) -> object:
    if not metavar:
        return 0
    if metavar == "...":
        return "..."
    words = metavar.split(" ")
    if len(words) >= 2 and words[-1].endswith("...]"):
        return "*" if words[0].startswith("[") else "+"
    if metavar.startswith("[") and metavar.endswith("]"):
        return "?"
    return len(words)


def _choices(metavar: str) -> Optional[Tuple[str, ...]]:
    first = metavar.split(" ")[0]
    if first.startswith("{") and first.endswith("}"):
        return tuple(first[1:-1].split(","))
    return None


def _usage_tokens(usage: str) -> List[Tuple[str, int]]:
    """The tokens of a usage text with their bracket depth."""
    depth, out = 0, []
    for token in re.findall(r"\[|\]|[^\s\[\]]+", usage):
        if token == "[":
            depth += 1
        elif token == "]":
            depth -= 1
        else:
            out.append((token, depth))
    return out


def parse_help(text: str) -> CommandLineSpec:
    """
    The options, positionals and required options of an argparse ``--help`` text.

    Raises:
        ValueError: the text has no usage line or no option.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("usage:")), None)
    if start is None:
        raise ValueError("no 'usage:' line in the help text")
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    usage_tokens = _usage_tokens(" ".join(lines[start:end])[len("usage:"):])[1:]  # without the program
    spec = CommandLineSpec()
    section = None
    for line in lines[end:]:
        if line and not line.startswith(" "):
            header = line.strip()
            section = header if header in ("positional arguments:", "options:", "optional arguments:") else None
            continue
        # entries are indented by 2; their wrapped help text by more
        if section is None or not line.startswith("  ") or line.startswith("   "):
            continue
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if section == "positional arguments:":
            spec.positionals.append(head)
            continue
        for part in head.split(", "):
            name, _, metavar = part.partition(" ")
            spec.options[name] = Option(_nargs(metavar), _choices(metavar))
    if not spec.options:
        raise ValueError("no option found in the help text")
    spec.required = {t for t, depth in usage_tokens if depth == 0 and t.startswith("-")}
    spec.remainder = bool(usage_tokens) and usage_tokens[-1] == ("...", 0)
    return spec


def _is_value(token: str) -> bool:
    return not token.startswith("-") or bool(re.match(r"^-\d", token))


def check_arguments(spec: CommandLineSpec, args: Sequence[str]) -> Tuple[List[str], Dict[str, List[str]], List[str]]:
    """
    Check ``args`` as argparse would parse them with ``spec``.

    Returns:
        ``(problems, option values by option name, config overrides)``; the overrides are the
        arguments taken by a REMAINDER (``--opts ...`` or a trailing positional).
    """
    problems: List[str] = []
    given: Dict[str, List[str]] = {}
    positionals: List[str] = []
    overrides: List[str] = []
    plain_positionals = len(spec.positionals) - (1 if spec.remainder else 0)
    i = 0
    while i < len(args):
        token = args[i]
        if spec.remainder and len(positionals) == plain_positionals and _is_value(token):
            overrides = list(args[i:])
            break
        if not _is_value(token):
            name, has_value, inline = token.partition("=")
            option = spec.options.get(name)
            i += 1
            if option is None:
                problems.append(f"unknown option {name!r} (the script has: {', '.join(sorted(spec.options))})")
                continue
            if option.nargs == "...":
                values = list(args[i:])
                overrides = values
                i = len(args)
            elif has_value:
                values = [inline]
            else:
                low, high = {"?": (0, 1), "*": (0, 1 << 30), "+": (1, 1 << 30)}.get(option.nargs, (option.nargs, option.nargs))
                values = []
                while i < len(args) and len(values) < high and _is_value(args[i]):
                    values.append(args[i])
                    i += 1
                if len(values) < low:
                    problems.append(f"{name} takes {option.nargs} value(s), got {len(values)}")
            for value in values if option.choices else ():
                if value not in option.choices:
                    problems.append(f"{name} {value!r}: not one of {', '.join(option.choices)}")
            given[name] = values
            continue
        if len(positionals) < plain_positionals:
            positionals.append(token)
        else:
            problems.append(f"unexpected argument {token!r}")
        i += 1
    for name in sorted(spec.required - set(given)):
        problems.append(f"required option {name} is missing")
    if len(positionals) < plain_positionals:
        missing = spec.positionals[len(positionals):plain_positionals]
        problems.append(f"missing positional argument(s): {', '.join(missing)}")
    return problems, given, overrides


def _target_parameters(node: DictConfig) -> Optional[Set[str]]:
    """The argument names of the LazyCall ``node``'s target (None: not a LazyCall, or ``**kwargs``)."""
    if "_target_" not in node:
        return None
    target = node._target_
    if isinstance(target, str):
        target = locate(target)
    parameters = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _key_problem(cfg: DictConfig, key: str) -> Optional[str]:
    """Why ``key`` is not a key of ``cfg`` (None: it is, or it is an argument of the LazyCall holding it)."""
    node = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the config"
        last = depth == len(parts) - 1
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                return f"{where} is a list of {len(node)}: no item {part!r}"
            if last:
                return None
            node = node[int(part)]
        elif isinstance(node, DictConfig):
            if part in node.keys():
                if last:
                    return None
                node = node[part]
                continue
            parameters = _target_parameters(node)
            if last and parameters is not None and part in parameters:
                return None
            return f"{where} has no key {part!r}"
        else:
            return f"{where} is a value, not a config node"
    return None


def override_problems(config_file: str, overrides: Sequence[str]) -> List[str]:
    """
    Why ``overrides`` (``key=value``) do not apply to the LazyConfig ``config_file``: a key that
    is not in the config (nor an argument of the LazyCall that holds it), or an error of
    ``LazyConfig.apply_overrides``.
    """
    cfg = LazyConfig.load(config_file)
    problems = []
    for override in overrides:
        key, has_value, _ = override.partition("=")
        if not has_value:
            problems.append(f"{override!r} is not a key=value config override")
            continue
        problem = _key_problem(cfg, key)
        if problem is not None:
            problems.append(f"{override!r}: {problem}")
    if not problems:
        try:
            LazyConfig.apply_overrides(cfg, list(overrides))
        except Exception as e:  # noqa: BLE001  (reported with the command)
            problems.append(f"LazyConfig.apply_overrides fails: {type(e).__name__}: {e}")
    return problems


def heading_anchors(text: str) -> Set[str]:
    """The anchors GitHub gives the headings of a Markdown text, plus explicit ``<a name=...>`` ones."""
    anchors: Set[str] = set(re.findall(r'<a (?:name|id)="([^"]+)"', text))
    inside_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside_code = not inside_code
            continue
        match = None if inside_code else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            title = re.sub(r"<[^>]+>", "", match.group(1)).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            base, n = slug, 1
            while slug in anchors:
                slug = f"{base}-{n}"
                n += 1
            anchors.add(slug)
    return anchors
