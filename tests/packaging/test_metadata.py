"""The distribution's name, version pins and licence agree everywhere they are written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from cachectl import __version__
from cachectl.errors import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
LINT_DOC = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")  # the Actions and pre-commit snippets


def test_install_hints_name_the_distribution_in_pyproject() -> None:
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    for extras in PYPROJECT["project"]["optional-dependencies"].values():
        for requirement in extras:
            assert not requirement.startswith("cachectl["), requirement


def test_docs_pin_the_release_this_checkout_would_publish() -> None:
    pins = re.findall(r"cachectl-redis==([\w.]+)", README + LINT_DOC)
    assert len(pins) >= 2, "the Actions and pre-commit snippets pin a release"
    assert set(pins) == {__version__}
    for text in (README, LINT_DOC):
        assert "pip install cachectl\n" not in text and "rev: v" not in text


def test_license_is_the_full_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_metadata_has_project_urls_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in project["classifiers"])


def test_the_readme_paths_of_the_demo_data_are_the_packaged_files() -> None:
    from cachectl.demo import DEMO_POLICY, SEEDS

    assert (ROOT / "policies" / "ecommerce.yaml").samefile(DEMO_POLICY)
    shipped = sorted(p.name for p in SEEDS.iterdir())
    assert shipped == ["categories.json", "prices.csv", "products.jsonl", "stock.csv"]
    for name in shipped:  # symlinks in the checkout: one copy, nothing kept in step by hand
        assert (ROOT / "examples" / "seeds" / name).samefile(SEEDS / name)
