"""The package metadata builds with current tools: the licence is an SPDX expression (PEP 639;
the table form is deprecated and stops building in 2027), with a setuptools that reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())


def test_the_licence_is_an_spdx_expression() -> None:
    licence = PYPROJECT["project"]["license"]
    assert isinstance(licence, str), 'write `license = "Apache-2.0"`, not a table'
    assert canonicalize_license_expression(licence) == licence == "Apache-2.0"


def test_the_build_needs_a_setuptools_that_understands_it() -> None:
    (setuptools,) = [
        Requirement(r)
        for r in PYPROJECT["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    ]
    assert not setuptools.specifier.contains(Version("76.9")), "PEP 639 needs setuptools>=77"
