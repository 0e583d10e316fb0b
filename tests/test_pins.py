"""constraints.txt (the lock written by scripts/lock.sh) against pyproject.toml and the venv.

- every dependency pyproject.toml declares (and the dev extra, and the packages an extra
  such as psycopg[binary] pulls in) has an exact pin, inside the declared range;
- every pin is what the running environment has installed (a drifted .venv fails here);
- run.json's environment records the versions of the libraries that shape a run.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from trainlab import environment

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"

# What every run.json records under environment.versions (issue 13).
RECORDED = (
    "trainlab",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "safetensors",
    "optuna",
    "SQLAlchemy",
    "PyYAML",
)

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)$")


def read_pins(text: str) -> dict[str, Version]:
    """constraints.txt's `name==version` lines, keyed by PEP 503 normalised name."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt line {number}: {line!r} is not an exact `name==version`"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"constraints.txt line {number}: {name} is pinned twice"
        pins[name] = Version(match["version"])
    return pins


def make_extras() -> list[str]:
    """The extras `make install` installs (the Makefile's EXTRAS)."""
    found = re.search(r"^EXTRAS \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile sets no EXTRAS"
    return found.group(1).strip().split(",")


def declared_requirements(pyproject: dict) -> list[Requirement]:
    """[project.dependencies] plus the extras make installs, those whose markers apply."""
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    lines = [*project["dependencies"], *(r for e in make_extras() for r in extras[e])]
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def extra_requirements(req: Requirement) -> list[Requirement]:
    """What `name[extra]` adds, read from the installed distribution's metadata."""
    found = []
    for line in metadata.requires(req.name) or []:
        extra_req = Requirement(line)
        if extra_req.marker is None or extra_req.marker.evaluate({"extra": ""}):
            continue  # an unconditional requirement of the package, not of the extra
        if any(extra_req.marker.evaluate({"extra": extra}) for extra in req.extras):
            found.append(extra_req)
    return found


def pin_problems(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    """Every requirement without a pin or with a pin outside its range, as a sentence."""
    problems = []
    for req in requirements:
        name = canonicalize_name(req.name)
        pinned = pins.get(name)
        if pinned is None:
            problems.append(f"{req.name} ({req}) has no pin in constraints.txt")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} does not satisfy {req}")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    return read_pins(CONSTRAINTS.read_text())


def test_constraints_file_is_exact_pins_with_a_header(pins):
    header = "\n".join(
        itertools.takewhile(lambda line: line.startswith("#"), CONSTRAINTS.read_text().splitlines())
    )
    assert header and "scripts/lock.sh" in header, "the header says how the file is generated"
    assert "trainlab" not in pins, "the editable trainlab itself must not be pinned"
    assert pins["torch"] == Version("2.13.0")  # installed first, from the local disk
    assert len(pins) >= 40  # the whole installed set, not only the direct dependencies


def test_every_declared_dependency_is_pinned_inside_its_range(pyproject, pins):
    reqs = declared_requirements(pyproject)
    names = {canonicalize_name(r.name) for r in reqs}
    assert {"torch", "numpy", "psycopg", "pytest", "ruff"} <= names
    assert pin_problems(reqs, pins) == []


def test_packages_an_extra_pulls_in_are_pinned_inside_their_range(pyproject, pins):
    with_extras = [r for r in declared_requirements(pyproject) if r.extras]
    assert "psycopg" in {r.name for r in with_extras}
    # psycopg[binary] installs psycopg and psycopg-binary; both are part of the lock.
    assert "psycopg" in pins and "psycopg-binary" in pins
    assert pins["psycopg-binary"] == pins["psycopg"]
    for req in with_extras:
        try:
            added = extra_requirements(req)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{req.name} is not installed: cannot read what [{req.extras}] adds")
        assert added, f"{req} adds nothing according to {req.name}'s metadata"
        assert pin_problems(added, pins) == []


def test_the_check_catches_a_missing_pin_and_a_pin_outside_the_range(pyproject, pins):
    doctored = {**pins, "numpy": Version("1.20.0")}
    del doctored["ruff"]
    problems = pin_problems(declared_requirements(pyproject), doctored)
    assert len(problems) == 2
    assert any(p.startswith("numpy==1.20.0 does not satisfy numpy>=") for p in problems)
    assert any(p.startswith("ruff (ruff>=") for p in problems)
    with pytest.raises(AssertionError, match="not an exact"):
        read_pins("numpy>=1.24\n")
    with pytest.raises(AssertionError, match="pinned twice"):
        read_pins("PyYAML==6.0.4\npyyaml==6.0.3\n")


@pytest.mark.parametrize("name", sorted(read_pins(CONSTRAINTS.read_text())))
def test_installed_version_equals_the_pin(name, pins):
    try:
        installed = Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        pytest.skip(f"{name} is pinned but not installed in this environment")
    pinned = pins[name]
    # A pin without a local label (torch==2.13.0) accepts any build of it (2.13.0+cpu).
    compared = installed if pinned.local else Version(installed.public)
    assert compared == pinned, (
        f"{name} {installed} is installed but constraints.txt pins {pinned}: "
        "rebuild the venv (rm -rf .venv && make install) or regenerate the lock"
    )


def test_makefile_installs_both_steps_under_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, re.M)
    assert stamp and "constraints.txt" in stamp.group(1).split()
    pip_lines = [line for line in makefile.splitlines() if "pip install" in line]
    assert len(pip_lines) == 2
    assert all("-c constraints.txt" in line for line in pip_lines)
    assert "torch==2.13.0" in pip_lines[0] and ".[$(EXTRAS)]" in pip_lines[1]
    assert "dev" in make_extras()


def test_run_environment_records_every_library_version():
    env = environment.describe(torch.device("cpu"))
    for key in ("python", "platform", "machine", "cpu_count", "torch_threads", "device"):
        assert key in env
    assert env["device"] == "cpu"
    assert env["torch_threads"] == torch.get_num_threads()
    versions = env["versions"]
    assert set(RECORDED) <= set(versions)
    for pkg in RECORDED:
        assert versions[pkg] == metadata.version(pkg), pkg
    assert versions["torch"] == torch.__version__
    json.dumps(env)  # run.json must be able to hold it


def test_environment_command_prints_the_versions_header():
    out = subprocess.run(
        [sys.executable, "-m", "trainlab.environment"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"python {sys.version.split()[0]} ")
    assert "torch threads" in lines[0]
    for pkg in RECORDED:
        assert f"{pkg} {metadata.version(pkg)}" in lines[1], pkg
