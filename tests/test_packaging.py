"""The wheel holds exactly emoforge's packages and installs into a fresh virtualenv;
the command line answers --version and --help and refuses bad input in one line."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"emoforge", "curation", "curation/footage", "labeling", "shards", "training", "dashboards"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    return next(out.glob("emoforge-*.whl"))


def test_wheel_holds_exactly_the_emoforge_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"emoforge", next(t for t in top if t.endswith(".dist-info"))}
    packages = {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    assert packages == {"emoforge"} | {f"emoforge/{p}".replace("emoforge/emoforge", "emoforge") for p in PACKAGES}
    # Every folder of the source tree with an __init__.py made it into the wheel (none forgotten).
    source_packages = {
        str(p.parent.relative_to(ROOT))
        for folder in ("emoforge", "curation", "labeling", "shards", "training", "dashboards")
        for p in (ROOT / folder).rglob("__init__.py")
    }
    assert source_packages == PACKAGES
    assert "emoforge/curation/footage/truth.schema.json" in names
    assert any(n.startswith("emoforge/dashboards/static/") for n in names)
    assert not any(n.startswith(("tests/", "emoforge/tests")) for n in names)


def test_wheel_installs_into_a_fresh_venv_and_imports_light(tmp_path, wheel):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    with zipfile.ZipFile(wheel) as archive:  # install = unpack into site-packages (no network, no pip)
        archive.extractall(site)
    code = (
        "import sys, emoforge, emoforge.curation, emoforge.labeling, emoforge.shards, "
        "emoforge.training, emoforge.dashboards, emoforge.curation.footage;"
        "heavy = {'ray', 'mediapipe', 'torch', 'starlette', 'cv2', 'av'} & set(sys.modules);"
        "print(emoforge.__version__, sorted(heavy))"
    )
    result = subprocess.run(  # outside the repo, where the source folders would shadow the install
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    version, heavy = result.stdout.split(" ", 1)
    assert version == "0.1.0" and heavy.strip() == "[]"


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["curate", "--help"], ["shards", "--help"]])
def test_cli_answers(args):
    result = subprocess.run([sys.executable, "-m", "emoforge", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout and not result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-command"], "error: argument COMMAND: invalid choice"),
        (["curate", "--out", "x"], "error: the following arguments are required: SOURCE"),
        (["footage", "--out", "x", "--videos", "0"], "error: argument --videos: must be at least 1"),
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(args, message):
    result = subprocess.run([sys.executable, "-m", "emoforge", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
