"""The package layout rules of dev/check_layout.py hold, and the checker finds what it claims to."""
import importlib.util
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check_layout():
    spec = importlib.util.spec_from_file_location("yolox_d2_check_layout", REPO / "dev" / "check_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layout_rules_hold(check_layout):
    problems = check_layout.check()
    assert problems == [], "\n".join(problems)


def _write_package(root: Path, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return {
        ".".join(p.relative_to(root).with_suffix("").parts[:-1] if p.name == "__init__.py" else p.relative_to(root).with_suffix("").parts): str(p)
        for p in root.rglob("*.py")
    }


def test_finds_an_import_cycle_also_through_a_lazy_import(tmp_path, check_layout):
    modules = _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import g\n",
            "pkg/b.py": "def g():\n    from . import a\n",
            "pkg/c.py": "from pkg import a\n",
        },
    )
    assert check_layout.find_cycles(check_layout.import_graph(modules)) == [["pkg.a", "pkg.b"]]


def test_finds_a_cross_module_private_read_only(tmp_path, check_layout):
    modules = _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/model.py": "class M:\n    def __init__(self):\n        self._hidden = 1\n    def _helper(self):\n        return self._hidden\n",
            "pkg/user.py": "def f(m):\n    return m._hidden + m._helper() + m.public\n",
        },
    )
    reads = check_layout.private_reads(modules)
    assert sorted(expr for _, _, expr, _ in reads) == ["m._helper", "m._hidden"]
    assert {owner for _, _, _, owner in reads} == {"pkg.model"}
