"""The README and docs: short, their links resolve, their commands parse (and the cheap ones run),
and the table of hyperparameters is the one config.py makes."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ticketlib.cli import build_parser
from ticketlib.config import TABLE_END, TABLE_START, markdown_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md",
        ROOT / "notebooks" / "README.md"]


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path = (doc.parent / target).resolve()
        assert path.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert path.exists(), f"{doc.name} links to a missing {target}"


def test_the_hyperparameter_table_is_current():
    text = (ROOT / "docs" / "internals.md").read_text()
    table = text.split(TABLE_START + "\n", 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == markdown_table().strip(), "run `make docs`"


def readme_commands() -> list[list[str]]:
    """Each `.venv/bin/...` command of the README's bash blocks (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        for part in line.split("&&"):
            part = part.split("  #")[0].strip()
            if part.startswith(".venv/bin/"):
                commands.append(shlex.split(part))
    return commands


def test_every_ticketlib_command_in_the_readme_parses_and_its_grids_resolve():
    from ticketlib.cli import given
    from ticketlib.imp.grid import file_configs, spec_configs
    commands = [c for c in readme_commands() if c[0].endswith("/ticketlib")]
    assert len(commands) >= 6
    for argv in commands:
        args = build_parser().parse_args(argv[1:])
        if args.command == "run":  # the runs it would train, resolved and checked, none trained
            assert (file_configs(args.config, given(args)) if args.config else spec_configs(given(args)))
        if args.command in ("export", "ticket"):
            assert (ROOT / "configs" / f"{args.grid}.yaml").is_file()


@pytest.mark.slow
def test_the_cheap_readme_commands_run_as_written(tmp_path):
    """The initializers, papermill's help and the papermill example, as the README writes them (in a
    scratch copy of the repository's notebooks, results and configs)."""
    import shutil
    for folder in ("notebooks", "results", "configs"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0] for line in "\n".join(blocks).replace("\\\n", " ").splitlines()]
    cheap = [line for line in lines if re.search(r"\.venv/bin/(papermill|ticketlib inits)", line)]
    assert len(cheap) >= 3
    for line in cheap:
        command = line.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, (line, result.stderr[-2000:])
    assert (tmp_path / "build" / "03_imp.ipynb").is_file()
