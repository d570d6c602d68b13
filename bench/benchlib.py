"""
Shared plumbing of the side-by-side benchmarks in ``bench/``: alternating timers, summaries,
machine facts and the JSON record every script can write for ``bench/run_all.py``.

Every ``bench/bench_*.py`` script:

* times yolox_d2 and the official YOLOX (PyPI ``yolox==0.3.0``) on the same inputs, with the
  same intra-op thread count, alternating the two (ABBA order per round, so a change of
  machine load hits both alike);
* prints a markdown table (median / min / max per side and the ratio ours / official);
* with ``--json PATH`` also writes :func:`Report` as JSON for ``run_all.py``.

The scripts are run as ``python bench/<name>.py`` (this directory is then on ``sys.path``);
never import them as a package.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    # tests/official_reference.py (the parity helpers) is shared with the benchmarks.
    sys.path.insert(0, REPO_ROOT)

# The load when the benchmark process started (machine_info() may be called at the end).
_LOAD_AT_START = os.getloadavg()[0]

__all__ = [
    "REPO_ROOT",
    "Stats",
    "Report",
    "alternate",
    "set_threads",
    "machine_info",
    "add_common_args",
    "finish",
    "photo_paths",
    "command_line",
]


@dataclass
class Stats:
    """Summary of repeated timings, in milliseconds (or any unit the caller chooses)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float], scale: float = 1e3) -> "Stats":
        if not values:
            raise ValueError("no timings to summarise")
        return cls(
            median=statistics.median(values) * scale,
            min=min(values) * scale,
            max=max(values) * scale,
            n=len(values),
        )

    def fmt(self, unit: str = "ms", digits: int = 1) -> str:
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}–{self.max:.{digits}f}) {unit}"


def alternate(
    runners: Dict[str, Callable[[], object]], runs: int, warmup: int = 2
) -> Dict[str, List[float]]:
    """
    Time each callable ``runs`` times, interleaved: round ``i`` runs them in order, round
    ``i+1`` in reverse (ABBA...), so slow drifts in machine load hit every side alike.

    Returns seconds per call, per name.
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(runs):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return times


def set_threads(threads: int) -> None:
    """Same intra-op thread count for both implementations (torch and OpenCV)."""
    import torch

    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - cv2 is a hard dependency of both
        pass


def _cpuinfo(field: str) -> str:
    """The value of the first ``field`` line of /proc/cpuinfo ("" when there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def vector_isa() -> str:
    """The CPU's widest vector ISA (from /proc/cpuinfo flags), what torch's ATen kernels use
    (``torch.backends.cpu.get_cpu_capability()``, lowered by ``ATEN_CPU_CAPABILITY``) and the
    ``ONEDNN_MAX_CPU_ISA`` cap when one is set: the timings depend on all three."""
    import torch

    flags = set(_cpuinfo("flags").split())
    if "avx512f" in flags:
        cpu = "AVX-512" + (" (with VNNI / BF16)" if {"avx512_vnni", "avx512_bf16"} <= flags else "")
    elif "avx2" in flags:
        cpu = "AVX2 (no AVX-512)"
    else:
        cpu = "unknown" if not flags else "below AVX2"
    text = f"{cpu}; torch kernels: {torch.backends.cpu.get_cpu_capability()}"
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        text += f"; ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}"
    return text


def machine_info() -> Dict[str, str]:
    """Machine and library versions, recorded with every figure."""
    import torch

    info = {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "vector ISA": vector_isa(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "load average (1 min) at start": f"{_LOAD_AT_START:.2f}",
    }
    try:
        from importlib.metadata import version

        info["yolox (official)"] = version("yolox")
        info["detectron2"] = version("detectron2") if _has_dist("detectron2") else version("sal-detectron2")
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["git commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return info


def _has_dist(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


@dataclass
class Report:
    """What one benchmark script measured: a markdown table plus the context to reproduce it."""

    title: str
    command: str
    columns: List[str]
    rows: List[List[str]]
    notes: List[str] = field(default_factory=list)
    machine: Dict[str, str] = field(default_factory=dict)
    # Machine-readable figures (name -> number), e.g. {"s_fused_ratio": 0.62}.
    figures: Dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", f"`{self.command}`", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def add_common_args(parser, runs: int = 10, warmup: int = 2):
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both sides")
    parser.add_argument("--runs", type=int, default=runs, help="timed runs per side")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed runs per side")
    parser.add_argument("--json", help="also write the report as JSON here (for run_all.py)")
    return parser


def finish(report: Report, json_path: Optional[str]) -> None:
    """Print the report and optionally write it as JSON."""
    if not report.machine:
        report.machine = machine_info()
    report.machine["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    print(report.markdown(), flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(asdict(report), f, indent=1)


def command_line() -> str:
    """The command that produced a figure, relative to the repository root."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT)
    args = [a for i, a in enumerate(sys.argv[1:]) if not (a == "--json" or sys.argv[i] == "--json")]
    return " ".join(["python", script, *args])


def photo_paths() -> List[str]:
    """Real photos for end-to-end timings: scikit-image's sample photos."""
    import skimage

    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    paths = [os.path.join(skimage.data_dir, n) for n in names]
    return [p for p in paths if os.path.exists(p)]
