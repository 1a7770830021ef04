"""Notebooks run in a scratch copy of the project layout, so tests never touch figures/ or data/."""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture
def scratch(tmp_path):
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    shutil.copytree(ROOT / "results", tmp_path / "results")
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


@pytest.mark.slow
def test_notebooks_pass_nbval(scratch):
    """Every notebook runs with its defaults on the shipped results; cells marked NBVAL_CHECK_OUTPUT
    must reproduce their stored output; exploratory outputs stay out of the study's folders."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                             "notebooks"], cwd=scratch, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (scratch / "build" / "exploratory" / "figures" / "imp_mnist_main.png").is_file()
    assert not (scratch / "figures").exists() and not (scratch / "paper").exists()


def test_stored_outputs_hold_no_machine_paths_or_progress_bars():
    for book in BOOKS:
        for cell in json.loads(book.read_text())["cells"]:
            text = json.dumps(cell.get("outputs", []))
            assert "/work/" not in text and "/tmp/" not in text and "it/s" not in text, book.name
            assert not any(o.get("name") == "stderr" for o in cell.get("outputs", [])), book.name


@pytest.mark.slow
def test_papermill_publishes_a_grid_with_its_provenance(scratch, tiny_grid):
    import papermill
    root, _ = tiny_grid
    papermill.execute_notebook(str(scratch / "notebooks" / "03_imp.ipynb"), str(scratch / "imp_out.ipynb"),
                               parameters=dict(grid="tiny", results_dir=str(root / "results"), publish=True,
                                               root=str(scratch)),
                               cwd=str(scratch / "notebooks"), progress_bar=False)
    table = (scratch / "paper" / "generated" / "imp_tiny.md").read_text()
    assert table.splitlines()[0] == "| initializer | 100.0% | 80.8% | 65.4% |"  # 1952, 1578, 1277 weights kept
    assert [line.split(" |")[0] for line in table.splitlines()[2:]] == ["| xavier_normal", "| lecun_uniform"]
    for suffix in ("png", "pdf"):
        assert (scratch / "figures" / f"imp_tiny.{suffix}").stat().st_size > 1000
    manifest = json.loads((scratch / "paper" / "generated" / "manifest.json").read_text())
    assert {s["grid"] for key in ("figure:imp_tiny", "table:imp_tiny", "value:imp.tiny.seeds")
            for s in manifest[key]} == {"tiny"}


def notebook_defaults(path: Path) -> dict:
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(parameters_cell(path)).body}


PARAMS = sorted((NOTEBOOKS / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_parameter_files_name_real_parameters_and_current_results(path):
    """Each study parameter file names its notebook's parameters, and its grid's shipped results were
    exported from the grid file as it is now (same runs, engine version and rounds)."""
    import yaml
    from ticketlib.imp.grid import file_configs
    from ticketlib.analysis.results import grid_hash

    notebook = NOTEBOOKS / f"{path.name.split('.')[0]}.ipynb"
    assert notebook.is_file(), f"{path.name} names no notebook"
    given = yaml.safe_load(path.read_text())
    assert set(given) <= set(notebook_defaults(notebook)), f"{path.name}: unknown parameters"
    assert given.get("publish") is True, f"{path.name}: the study's parameter files publish"
    grids = [value for key, value in given.items() if key in ("grid", "as_run", "fixed") or key.endswith("_grid")]  # as the Makefile's STUDY_GRIDS
    assert grids or notebook.name.startswith("01_"), f"{path.name} names no grid"
    for grid in grids:
        configs = file_configs(str(ROOT / "configs" / f"{grid}.yaml"))
        identity = json.loads((ROOT / "results" / grid / "grid.json").read_text())
        assert identity["grid_hash"] == grid_hash(configs), f"results/{grid} is stale: export it again"


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_each_notebook_opens_with_what_it_shows_and_how_to_read_it(path):
    first = json.loads(path.read_text())["cells"][0]
    text = "".join(first["source"])
    assert first["cell_type"] == "markdown" and text.startswith("# ") and "How to read it" in text, path.name
