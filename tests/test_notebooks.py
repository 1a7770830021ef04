"""Notebooks run in a scratch copy of the project layout, so tests never touch figures/ or data/."""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture
def scratch(tmp_path):
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    return tmp_path


def parameters_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_parameters_are_documented_literals(path):
    source = parameters_cell(path)
    for node, line in zip(ast.parse(source).body, source.splitlines()):
        assert isinstance(node, ast.AnnAssign), f"{path.name}: only `name: type = literal` lines: {line}"
        ast.literal_eval(node.value)  # raises if not a literal
        assert "  # " in line and line.split("  # ", 1)[1].strip(), f"{path.name}: no help comment: {line}"


def test_notebooks_pass_nbval(scratch):
    """Every notebook runs with its defaults; cells marked NBVAL_CHECK_OUTPUT must reproduce their output."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                             "notebooks"], cwd=scratch, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (scratch / "figures" / "imp_mnist1d_frankle2019.png").is_file()


def test_papermill_smoke_run_with_tiny_parameters(scratch):
    import papermill
    output = scratch / "imp_out.ipynb"
    papermill.execute_notebook(str(scratch / "notebooks" / "03_imp.ipynb"), str(output),
                               parameters=dict(schemes=["lecun_uniform", "orthogonal"], seeds=[3], rounds=2,
                                               iterations=40, eval_every=20, num_samples=1000, workers=1),
                               cwd=str(scratch / "notebooks"), progress_bar=False)
    table = (scratch / "paper" / "generated" / "imp_mnist1d_frankle2019.md").read_text()
    assert table.splitlines()[0] == "| init | 100.0% | 80.2% |"  # the two rounds' levels
    assert [line.split(" |")[0] for line in table.splitlines()[2:]] == ["| lecun_uniform", "| orthogonal"]
    for suffix in ("png", "pdf"):
        assert (scratch / "figures" / f"imp_mnist1d_frankle2019.{suffix}").stat().st_size > 1000


def notebook_defaults(path: Path) -> dict:
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(parameters_cell(path)).body}


PARAMS = sorted((NOTEBOOKS / "params").rglob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_parameter_files_name_real_parameters_and_valid_grids(path):
    import yaml
    from ticketlib.grid import expand_grid
    from ticketlib.inits import resolve

    notebook = NOTEBOOKS / f"{path.name.split('.')[0]}.ipynb"
    assert notebook.is_file(), f"{path.name} names no notebook"
    defaults = notebook_defaults(notebook)
    given = yaml.safe_load(path.read_text())
    assert set(given) <= set(defaults), f"{path.name}: unknown parameters {set(given) - set(defaults)}"
    p = {**defaults, **given}
    if "seeds" in p:  # a training notebook: its grid must validate (names, rates, budgets)
        budget = dict(iterations=p["iterations"]) if p["iterations"] else dict(epochs=p["epochs"])
        configs = expand_grid([p["dataset"]], [p["model"]], resolve(p["schemes"]), p["seeds"], ["ticket"],
                              p.get("scales", [None]), p["protocol"], rounds=p["rounds"],
                              eval_every=p["eval_every"] or None,
                              num_samples=p["num_samples"] if p["dataset"] == "mnist1d" else None, **budget)
        assert configs
