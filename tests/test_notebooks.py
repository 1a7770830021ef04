"""The notebooks' form: documented literal parameters, a title and a how-to-read cell first, clean
stored outputs, parameter files that name real parameters and current results. (Their outputs are
checked once per test run, in the study's rebuild: tests/test_study.py.)"""
import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


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


def test_stored_outputs_hold_no_machine_paths_or_progress_bars():
    for book in BOOKS:
        for cell in json.loads(book.read_text())["cells"]:
            outputs = [{**o, "data": {k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")}}
                       for o in cell.get("outputs", [])]  # base64 images can spell anything, "it/s" included
            text = json.dumps(outputs)
            assert "/work/" not in text and "/tmp/" not in text and "it/s" not in text, book.name
            assert not any(o.get("name") == "stderr" for o in cell.get("outputs", [])), book.name


def notebook_defaults(path: Path) -> dict:
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(parameters_cell(path)).body}


PARAMS = sorted((NOTEBOOKS / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_parameter_files_name_real_parameters_and_current_results(path):
    """Each study parameter file names its notebook's parameters, and its grid's shipped results were
    exported from the grid file as it is now (same runs, engine version and rounds)."""
    import yaml

    from ticketlib.analysis.results import grid_hash
    from ticketlib.imp.grid import file_configs

    notebook = NOTEBOOKS / f"{path.name.split('.')[0]}.ipynb"
    assert notebook.is_file(), f"{path.name} names no notebook"
    given = yaml.safe_load(path.read_text())
    assert set(given) <= set(notebook_defaults(notebook)), f"{path.name}: unknown parameters"
    assert given.get("publish") is True, f"{path.name}: the study's parameter files publish"
    grids = [value for key, value in given.items()
             if value and (key in ("grid", "as_run", "fixed") or key.endswith("_grid"))]  # as the Makefile's STUDY_GRIDS
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
