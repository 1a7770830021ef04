"""`make study` rebuilds exactly what is committed: every value, table and figure from results/."""
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
