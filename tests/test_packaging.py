"""The wheel ships the product (vsearch, api and the page's static files), not benchmarks/ or training/; the
research commands that need training/ say so in one line when it is not there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT

# Run the CLI with only the unpacked wheel importable: the editable install's finder (which maps training/ and
# benchmarks/ to the source tree) is taken off sys.meta_path, and the source tree is not on sys.path.
WHEEL_ONLY = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "") + str(f)]
sys.path[:] = [sys.argv[1]] + [p for p in sys.path[1:] if p and not p.startswith({root!r})]
sys.argv = ["vsearch", *sys.argv[2:]]
from vsearch.cli import main
main()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the source tree (setuptools writes build/ and *.egg-info beside the sources)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    for name in ("vsearch", "api", "training", "benchmarks"):
        shutil.copytree(PROJECT_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "results", "data"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, src / name)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(out)],
        capture_output=True, text=True, timeout=300, cwd=out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (found,) = out.glob("vsearch-*.whl")
    return found


def test_the_wheel_ships_vsearch_and_api_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"vsearch", "api"}
    assert {"api/static/index.html", "api/static/app.js", "vsearch/cli/research.py"} <= set(names)
    # the API docs' Swagger UI, with its licence (served by /docs, no CDN)
    assert {f"api/static/swagger-ui/{f}" for f in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE")} <= set(names)


@pytest.mark.parametrize("args", [["eval-footage", "nowhere"], ["convert-pku", "nowhere", "out"]])
def test_research_commands_say_in_one_line_that_training_is_not_installed(wheel: Path, tmp_path: Path, args: list[str]) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = WHEEL_ONLY.format(root=str(PROJECT_ROOT))
    r = subprocess.run([sys.executable, "-c", code, str(site), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "needs the research code (training/)" in r.stderr
    assert "Traceback" not in r.stderr
