"""Every notebook ends its lessons with a questionnaire, and the learners' copies keep it.

A questionnaire is one Markdown cell headed "## Questionnaire" with 8 to 12 numbered questions,
each ending with "?", placed before the exercises. ``scripts/strip_solutions.py`` (``make
learner-copy``) must leave it as it is.
"""
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HEADING = "## Questionnaire"
MIN_QUESTIONS, MAX_QUESTIONS = 8, 12
ITEM = re.compile(r"^(\d+)\.\s+(\S.*)$")


def questionnaire_cells(nb) -> list[int]:
    """Indices of the Markdown cells with a "## Questionnaire" heading line."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "markdown" and HEADING in (line.rstrip() for line in cell.source.splitlines())]


def questions(markdown: str) -> list[str]:
    """The numbered items of ``markdown``, each joined from its wrapped lines. Raises
    ValueError when the items are not numbered 1, 2, 3, ... in order."""
    items, numbers = [], []
    for line in markdown.splitlines():
        match = ITEM.match(line)
        if match:
            numbers.append(int(match.group(1)))
            items.append(match.group(2).strip())
        elif items and line.startswith(" ") and line.strip():
            items[-1] += " " + line.strip()  # an item wrapped onto the next line
        elif items and line.strip():
            raise ValueError(f"text after the questions: {line!r}")
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"questions numbered {numbers}, not 1 to {len(numbers)}")
    return items


def problems(markdown: str) -> list[str]:
    """What is wrong with a questionnaire cell ([] when nothing is)."""
    try:
        found = questions(markdown)
    except ValueError as err:
        return [str(err)]
    wrong = []
    if not MIN_QUESTIONS <= len(found) <= MAX_QUESTIONS:
        wrong.append(f"{len(found)} questions, not {MIN_QUESTIONS} to {MAX_QUESTIONS}")
    wrong += [f"question {k} does not end with '?': {q!r}" for k, q in enumerate(found, 1) if not q.endswith("?")]
    return wrong


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 8


def test_the_checker_catches_bad_questionnaires():
    good = "## Questionnaire\n\nIntro.\n\n" + "\n".join(f"{k}. Why {k}?" for k in range(1, 9))
    assert problems(good) == []
    assert problems(good.replace("Why 3?", "Because 3.")) == ["question 3 does not end with '?': 'Because 3.'"]
    assert problems("## Questionnaire\n\n" + "\n".join(f"{k}. Why?" for k in range(1, 8))) == [
        "7 questions, not 8 to 12"]
    assert problems("\n".join(f"{k}. Why?" for k in range(1, 14))) == ["13 questions, not 8 to 12"]
    assert "numbered" in problems("\n".join(f"{k}. Why?" for k in (1, 2, 4, 5, 6, 7, 8, 9)))[0]
    wrapped = "1. Why does a long question\n   wrap onto the next line?\n" + "\n".join(
        f"{k}. Why?" for k in range(2, 9))
    assert problems(wrapped) == [] and questions(wrapped)[0] == "Why does a long question wrap onto the next line?"
    assert problems("1. Why does this one\n   stop half way\n" + "\n".join(f"{k}. Why?" for k in range(2, 9)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_questionnaire(path):
    nb = nbformat.read(path, as_version=4)
    found = questionnaire_cells(nb)
    assert len(found) == 1, f"{path.name}: {len(found)} Markdown cells headed {HEADING!r}"
    cell = nb.cells[found[0]]
    assert cell.source.startswith(HEADING + "\n")
    assert problems(cell.source) == []
    exercises = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert all(found[0] < i for i in exercises), "the questionnaire comes before the exercises"


@pytest.fixture(scope="module")
def learner_copies(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("strip_solutions", ROOT / "scripts" / "strip_solutions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = tmp_path_factory.mktemp("learner_notebooks")
    removed = module.strip(ROOT / "notebooks", target)
    assert removed > 0  # it did strip something: the copies are not the originals
    return target


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_learner_copy_keeps_the_questionnaire(path, learner_copies):
    original = nbformat.read(path, as_version=4)
    copy = nbformat.read(learner_copies / path.name, as_version=4)
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in copy.cells)
    [kept] = questionnaire_cells(copy)
    [source] = questionnaire_cells(original)
    assert copy.cells[kept].source == original.cells[source].source
    assert problems(copy.cells[kept].source) == []


def test_readme_gallery_matches_the_notebooks():
    """Every README figure is the stored figure of its notebook (scripts/readme_figures.py --check),
    and the README shows one per notebook."""
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    assert figures.main(["--check"]) == 0, "a README figure is stale: run python scripts/readme_figures.py"
    readme = (ROOT / "README.md").read_text()
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert notebook.name in figures.FIGURES, f"{notebook.name} has no figure in scripts/readme_figures.py"
        assert f"docs/figures/{notebook.name[:2]}.png" in readme, f"the README does not show {notebook.name}'s figure"


def output_checked(cell) -> bool:
    """Whether nbval compares this cell's outputs under --nbval-lax: the cell tag
    ``nbval-check-output`` (what the notebooks use, out of the learner's sight), or the older
    comment line ``# NBVAL_CHECK_OUTPUT`` that some notebooks still carry."""
    return ("nbval-check-output" in cell.get("metadata", {}).get("tags", [])
            or any(line.strip() == "# NBVAL_CHECK_OUTPUT" for line in cell.source.splitlines()))


def test_output_checked_reads_the_tag_and_the_comment():
    tagged = nbformat.v4.new_code_cell("print(1)")
    tagged.metadata["tags"] = ["nbval-check-output"]
    assert output_checked(tagged)
    assert output_checked(nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"))
    assert not output_checked(nbformat.v4.new_code_cell("print(1)  # NBVAL_CHECK_OUTPUT is mentioned here"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_output_checked_cells_have_stored_outputs_and_no_machine_paths(path):
    """nbval compares a checked cell's outputs with the stored ones: they must be there (with an
    execution count), and hold nothing that changes from machine to machine."""
    nb = nbformat.read(path, as_version=4)
    checked = [cell for cell in nb.cells if cell.cell_type == "code" and output_checked(cell)]
    for cell in checked:
        assert cell.execution_count is not None and cell.outputs, f"{cell.id}: checked but never run"
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, f"{cell.id}: a machine path"
