"""Packaging (issue 16): what `pip install --no-build-isolation .` reads, checked statically (a real build
takes minutes: the fresh-venv run is recorded in the report of the change), and the README's example."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_names(requirements):
    return {re.split(r"[=<>!~ ;\[]", r, maxsplit=1)[0].lower(): r.replace(" ", "") for r in requirements}


def test_build_system_is_setuptools_against_the_installed_torch(pyproject):
    build = pyproject["build-system"]
    assert build["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("setuptools>=") for r in build["requires"])
    assert "torch>=2.1" in build["requires"]


def test_runtime_dependencies_are_complete_and_pinned_for_dgl_2_1(pyproject):
    project = pyproject["project"]
    assert project["name"] == "dgl-tgnn" and project["requires-python"] == ">=3.10"
    deps = requirement_names(project["dependencies"])
    assert deps["dgl"] == "dgl==2.1.0"
    assert deps["torchdata"] == "torchdata==0.9.0"  # DGL 2.1 imports torchdata.datapipes (gone in 0.10)
    for name in ("pydantic", "pandas", "pyyaml", "packaging", "numpy", "click", "tqdm", "matplotlib"):
        assert name in deps, name
    # torch is never pinned to a build or version that would replace the user's (CPU or CUDA) torch
    assert deps["torch"] == "torch>=2.1"
    assert not any("+cu" in r or "index-url" in r for r in project["dependencies"])
    assert project["scripts"]["dgl-tgnn"] == "dgl_tgnn.cli:main"
    assert "scikit-learn" in project["optional-dependencies"]["test"]


def test_every_imported_third_party_module_is_a_dependency(pyproject):
    deps = set(requirement_names(pyproject["project"]["dependencies"]))
    module_to_package = {"yaml": "pyyaml", "dgl": "dgl", "torch": "torch"}
    imported = set()
    for path in (ROOT / "dgl_tgnn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):  # import statements, not prose
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"dgl_tgnn", "__future__"}
    missing = {m for m in third_party if module_to_package.get(m, m) not in deps}
    assert missing <= {"torch_geometric"}, missing  # PyG is optional: from_pyg takes its objects


def test_setup_py_builds_only_the_extension_and_metadata_lives_in_pyproject():
    setup = (ROOT / "setup.py").read_text()
    for field in ("install_requires", "entry_points", "version=", "name="):
        assert field not in setup, field
    assert "ext_modules=[extension()]" in setup
    assert "--no-build-isolation" in setup  # the message when torch is missing


def test_requirements_and_makefile_keep_the_cpu_torch_first():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torchdata==0\.9\.0", requirements, re.M)
    assert re.search(r"^scikit-learn", requirements, re.M)
    assert not re.search(r"^torch\b", requirements, re.M)  # torch comes from the Makefile, first
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH := torch==2.13.0" in makefile
    deps = makefile[makefile.index("$(VENV)/.deps:") :]
    assert deps.index("install -q $(TORCH)\n") < deps.index("-r requirements.txt")
    assert re.search(r"^train: install", makefile, re.M) and re.search(r"^test: ", makefile, re.M)


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_readme_gives_the_one_pip_command():
    section = readme_section("Install with pip")
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert commands[0].strip() == "pip install --no-build-isolation ./dgl-tgnn"


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGL_TGNN_CACHE", str(tmp_path / "cache"))
    (code,) = re.findall(r"```python\n(.*?)```", readme_section("Install with pip"), re.S)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "data: wikipedia" in out and "Block(num_src_nodes=" in out


def test_dgl_backend_notice_is_silenced(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DGLBACKEND"}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", "import dgl_tgnn._dgl"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert not (tmp_path / ".dgl").exists()  # DGL wrote no config file either
