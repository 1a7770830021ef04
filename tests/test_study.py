"""`make study` rebuilds exactly what is committed: every value, table and figure from results/,
and each notebook's checked outputs (what `pytest --nbval-lax notebooks` compares) — every
notebook is executed once per test run, by this rebuild."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # the whole study rebuilt

ROOT = Path(__file__).resolve().parents[1]
PARAMS = sorted((ROOT / "notebooks" / "params").glob("*.yaml"))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """The study's notebooks run into a scratch copy of the repository's layout."""
    import papermill
    scratch = tmp_path_factory.mktemp("study")
    for folder in ("notebooks", "results"):
        shutil.copytree(ROOT / folder, scratch / folder)
    for params in PARAMS:
        notebook = params.name.split(".")[0]
        papermill.execute_notebook(str(scratch / "notebooks" / f"{notebook}.ipynb"), str(scratch / f"{params.stem}.ipynb"),
                                   parameters=yaml.safe_load(params.read_text()), cwd=str(scratch / "notebooks"),
                                   progress_bar=False)
    return scratch


def test_rebuilt_values_and_tables_equal_the_committed_ones(rebuilt):
    committed, made = ROOT / "paper" / "generated", rebuilt / "paper" / "generated"
    assert json.loads((made / "values.json").read_text()) == json.loads((committed / "values.json").read_text())
    assert json.loads((made / "manifest.json").read_text()) == json.loads((committed / "manifest.json").read_text())
    tables = sorted(p.name for p in committed.glob("*.md"))
    assert tables == sorted(p.name for p in made.glob("*.md")) and tables
    for name in tables:
        assert (made / name).read_text() == (committed / name).read_text(), name


def test_rebuilt_figures_are_the_committed_ones(rebuilt):
    committed = sorted(p.name for p in (ROOT / "figures").glob("*.pdf"))
    assert committed == sorted(p.name for p in (rebuilt / "figures").glob("*.pdf")) and committed
    for name in committed:  # the PDFs carry no date: the same figure gives the same bytes
        assert (rebuilt / "figures" / name).read_bytes() == (ROOT / "figures" / name).read_bytes(), name


def checked_outputs(notebook: dict) -> list[str]:
    """The text outputs of the cells marked NBVAL_CHECK_OUTPUT, as nbval compares them."""
    texts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            texts.append("".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout"))
    return texts


def defaults(notebook: dict) -> dict:
    import ast
    cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body}


@pytest.mark.parametrize("book", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_notebooks_stored_outputs_are_what_its_defaults_give(book, rebuilt):
    """Its defaults are one of the study's parameter files (but for publishing), so the rebuild ran them."""
    stored = json.loads(book.read_text())
    given = defaults(stored)
    runs = [p for p in PARAMS if p.name.split(".")[0] == book.stem
            and all(given.get(k) == v for k, v in yaml.safe_load(p.read_text()).items() if k != "publish")]
    assert runs, f"{book.name}: no parameter file in notebooks/params/ has its defaults; add one or change them"
    executed = json.loads((rebuilt / f"{runs[0].stem}.ipynb").read_text())
    assert checked_outputs(executed) == checked_outputs(stored), f"{book.name}: run `make notebooks`"
