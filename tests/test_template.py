"""The questions: defaults, every choice, validation, and what ends up in the files."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.project import ROOT

QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())


def test_every_question_has_help_and_default():
    for name, spec in QUESTIONS.items():
        if name.startswith("_"):
            continue
        assert "default" in spec, name
        if spec.get("when") is not False:
            assert spec.get("help"), f"{name} has no help"
            assert "choices" in spec or "validator" in spec or spec["type"] == "bool", f"{name} is not validated"


def test_defaults_render_without_trust(tmp_path):
    """The README's command, exactly: `copier copy --defaults SRC DST`, no --trust."""
    dst = tmp_path / "p"
    proc = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", str(ROOT), str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in (
        "modal_app.py",
        "Makefile",
        "pyproject.toml",
        "tasks.jsonl",
        "README.md",
        ".gitignore",
        ".copier-answers.yml",
        ".pre-commit-config.yaml",
        ".github/workflows/ci.yml",
        "modal_jobs/__main__.py",
        "modal_jobs/cli.py",
        "modal_jobs/guard.py",
        "modal_jobs/ledger.py",
        "modal_jobs/tasks.py",
    ):
        assert (dst / name).is_file(), name
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert answers["app_name"] == "modal-jobs" and answers["_src_path"]


BAD_ANSWERS = [
    ({"timeout_seconds": 0}, "timeout_seconds", "between 1 and 86400"),
    ({"timeout_seconds": 100000}, "timeout_seconds", "between 1 and 86400"),
    ({"gpu": "H9000"}, "gpu", "H9000"),
    ({"gpu_count": 9}, "gpu_count", "between 1 and 8"),
    ({"gpu_count": 0}, "gpu_count", "between 1 and 8"),
    ({"retries": 11}, "retries", "between 0 and 10"),
    ({"app_name": "my app"}, "app_name", "lowercase"),
    ({"app_name": "app;rm -rf"}, "app_name", "lowercase"),
    ({"app_name": "$(whoami)"}, "app_name", "lowercase"),
    ({"app_name": "MyApp"}, "app_name", "lowercase"),
    ({"app_name": "-app"}, "app_name", "lowercase"),
    ({"function_name": "1job"}, "function_name", "identifier"),
    ({"function_name": "class"}, "function_name", "identifier"),
    ({"function_name": "app"}, "function_name", "identifier"),
    ({"project_name": "x; rm"}, "project_name", "letters"),
    ({"project_name": "Tests"}, "project_name", 'package name "tests"'),  # the project's tests/ folder
    ({"project_name": "Modal"}, "project_name", 'package name "modal"'),  # would shadow the modal library
    ({"project_name": "Class"}, "project_name", "keyword"),
    ({"project_name": "JSON"}, "project_name", "shadows"),
    # never asked, but `copier copy -d package_name=...` sets it: it becomes an import name
    ({"package_name": "1bad"}, "package_name", "identifier"),
    ({"package_name": "modal"}, "package_name", "shadows"),
    ({"package_name": "my-jobs"}, "package_name", "identifier"),
    ({"gpu_fallbacks": ["H9000"]}, "gpu_fallbacks", "unknown GPU"),
    ({"gpu_fallbacks": "H100"}, "gpu_fallbacks", "must be a list"),
    ({"gpu": "H100", "gpu_fallbacks": ["H100"]}, "gpu_fallbacks", "leave out the primary"),
    ({"gpu_fallbacks": ["L4", "L4"], "gpu": "H100"}, "gpu_fallbacks", "once"),
    ({"volume_name": "a b"}, "volume_name", "letters"),
    ({"secrets": ["ok", "bad name"]}, "secrets", "not a valid secret name"),
    ({"secrets": "wandb"}, "secrets", "must be a list"),
    ({"python_version": "2.7"}, "python_version", "2.7"),
    ({"workload": "tensorflow"}, "workload", "tensorflow"),
    ({"emulator_source": "/x; rm -rf /"}, "emulator_source", "only letters"),
    ({"emulator_source": "/opt/$HOME/emulator"}, "emulator_source", "only letters"),
    ({"emulator_source": "/opt/x#y"}, "emulator_source", "#subdirectory="),
    ({"emulator_source": "git+https://h/r#egg=x"}, "emulator_source", "#subdirectory="),
    ({"emulator_source": "git+https://h/r#subdirectory=a#b"}, "emulator_source", "#subdirectory="),
    # answers given as text (copier -d, a data file): a type error names the question too
    ({"timeout_seconds": "abc"}, "timeout_seconds", "whole number"),
    ({"timeout_seconds": "12.5"}, "timeout_seconds", "whole number"),
    ({"timeout_seconds": 12.5}, "timeout_seconds", "whole number"),
    ({"gpu_count": "two"}, "gpu_count", "whole number"),
    ({"retries": "1e3"}, "retries", "whole number"),
    ({"retries": ""}, "retries", "whole number"),
    ({"use_volume": "maybe"}, "use_volume", "yes or no"),
    ({"use_volume": "2"}, "use_volume", "yes or no"),
    ({"use_volume": ""}, "use_volume", "yes or no"),
]


@pytest.mark.parametrize(("answers", "question", "message"), BAD_ANSWERS, ids=lambda v: str(v)[:40])
def test_bad_answers_are_rejected_naming_the_question(tmp_path, answers, question, message):
    from copier import run_copy

    dst = tmp_path / "p"
    with pytest.raises(ValueError) as info:
        run_copy(str(ROOT), dst, data=answers, defaults=True, quiet=True, vcs_ref="HEAD")
    text = str(info.value)
    assert f"'{question}'" in text and message in text, text
    assert "\n" not in text.strip(), "the message should be one line"
    assert not (dst / "modal_app.py").exists(), "nothing is rendered for bad answers"


@pytest.mark.parametrize(
    ("answer", "question"),
    [("timeout_seconds=abc", "timeout_seconds"), ("gpu_count=2x", "gpu_count"), ("use_volume=maybe", "use_volume")],
)
def test_copier_cli_names_the_question_of_a_mistyped_answer(tmp_path, answer, question):
    """`copier copy -d timeout_seconds=abc`: copier prints its traceback, then one line naming the question."""
    dst = tmp_path / "p"
    cmd = [sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", "-d", answer, str(ROOT), str(dst)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"Validation error for question '{question}': {question}: " in last, proc.stderr[-2000:]
    assert not dst.exists()


def test_the_docs_show_the_line_that_ends_copiers_traceback(tmp_path):
    """README and Quickstart warn that copier prints a traceback first, and show its last line as it is."""
    dst = tmp_path / "p"
    cmd = [sys.executable, "-m", "copier", "copy", "--defaults", "--quiet", "-d", "gpu_count=9", str(ROOT), str(dst)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "Traceback" in proc.stderr, proc.stderr
    for doc in ("README.md", "docs/quickstart.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert lines[-1] in text and "traceback" in text, f"{doc} does not show {lines[-1]!r}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("on", True), ("1", True), (True, True), ("no", False), ("False", False), ("0", False)],
)
def test_use_volume_takes_the_usual_yes_and_no_words(render, value, expected):
    app = (render(use_volume=value) / "modal_app.py").read_text()
    assert ("modal.Volume" in app) is expected


@pytest.mark.parametrize("value", ["7", " 7 ", 7, "+7"])
def test_int_answers_given_as_text_still_work(render, value):
    assert "TIMEOUT_S = 7  #" in (render(timeout_seconds=value) / "modal_jobs" / "settings.py").read_text()


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"gpu": "none"}, None),
        ({"gpu": "T4"}, "T4"),
        ({"gpu": "H100", "gpu_count": 2}, "H100:2"),
        ({"gpu": "A100-80GB", "gpu_count": 8}, "A100-80GB:8"),
        ({"gpu": "H100", "gpu_fallbacks": ["A100-80GB", "L40S"]}, ["H100", "A100-80GB", "L40S"]),
        ({"gpu": "H200", "gpu_count": 4, "gpu_fallbacks": ["H100"]}, ["H200:4", "H100:4"]),
    ],
)
def test_gpu_is_rendered_as_modal_accepts_it(render, answers, expected):
    """settings.py holds the GPU once; modal_app.py passes settings.gpu_argument() to modal."""
    project = render(**answers)
    assert "gpu=settings.gpu_argument()" in (project / "modal_app.py").read_text()
    script = "from modal_jobs import settings; import json; print(json.dumps(settings.gpu_argument()))"
    out = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == expected


def test_conditional_parts(render):
    plain = render(use_volume=False, secrets=[], workload="minimal")
    app = (plain / "modal_app.py").read_text()
    assert "modal.Volume" not in app and "secrets=" not in app and "volume.commit" not in app
    assert "apt_install" not in app
    assert "VOLUME_NAME" not in (plain / "modal_jobs" / "settings.py").read_text()

    full = render(use_volume=True, volume_name="ckpts", secrets=["wandb", "hf-token"], workload="pytorch")
    app = (full / "modal_app.py").read_text()
    assert 'modal.Secret.from_name("wandb"), modal.Secret.from_name("hf-token")' in app
    assert '.apt_install("gcc")' in app, "torch.compile needs a C compiler in the image"
    assert 'VOLUME_NAME = "ckpts"' in (full / "modal_jobs" / "settings.py").read_text()
    assert "import torch" in (full / "modal_jobs" / "workload.py").read_text()
    assert '"torch==2.13.0"' in (full / "pyproject.toml").read_text()
    assert '"torch' not in (plain / "pyproject.toml").read_text()
    torch_modules = {"checkpoint.py", "corpus.py", "data.py", "model.py"}
    assert torch_modules <= {p.name for p in (full / "modal_jobs").iterdir()}
    assert not torch_modules & {p.name for p in (plain / "modal_jobs").iterdir()}
    # The generated CI's emulator flow runs the job in the project's venv: the pytorch one installs
    # the job's torch (CPU build) there before the tests, the minimal one installs nothing.
    for project, needs_torch in ((plain, False), (full, True)):
        ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
        steps = [step.get("run", "") for step in ci["jobs"]["local-flow"]["steps"]]
        installs = [i for i, run in enumerate(steps) if "torch==2.13.0" in run and "--torch-backend cpu" in run]
        assert bool(installs) == needs_torch, steps
        if needs_torch:
            assert installs[0] < steps.index("make test"), steps


def test_names_flow_through(render):
    dst = render(project_name="Protein Folding 2", app_name="fold-2", function_name="fold")
    assert (dst / "protein_folding_2" / "guard.py").is_file()
    assert 'APP_NAME = "fold-2"' in (dst / "protein_folding_2" / "settings.py").read_text()
    assert "def fold(task: dict" in (dst / "modal_app.py").read_text()
    assert "from protein_folding_2 import" in (dst / "modal_app.py").read_text()
    assert "python -m protein_folding_2" in (dst / "Makefile").read_text()


def test_emulator_source_defaults_to_the_template_checkout(render):
    makefile = (render() / "Makefile").read_text()
    assert f"EMULATOR ?= {ROOT / 'emulator'}" in makefile


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "git+https://github.com/acme/copier-modal-jobs@v1#subdirectory=emulator",
            "EMULATOR ?= modal-emu @ git+https://github.com/acme/copier-modal-jobs@v1\\#subdirectory=emulator",
        ),
        ("/opt/copier-modal-jobs/emulator", "EMULATOR ?= /opt/copier-modal-jobs/emulator"),
    ],
)
def test_emulator_source_override(render, source, expected):
    assert expected in (render(emulator_source=source) / "Makefile").read_text()


WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def _windows_problem(name: str) -> str | None:
    if re.search(r'[<>:"|?*\\\x00-\x1f]', name):
        return "forbidden character"
    if name.endswith((" ", ".")):
        return "trailing dot or space"
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        return "reserved device name"
    return None


def test_file_names_are_safe_on_windows(render):
    template_names = [p.relative_to(ROOT / "template") for p in (ROOT / "template").rglob("*")]
    # Jinja expressions in template file names are rendered away; check what remains, and the output.
    for rel in template_names:
        for part in rel.parts:
            stripped = re.sub(r"\{\{.*?\}\}", "x", part)
            assert _windows_problem(stripped) is None, f"template/{rel}: {_windows_problem(stripped)}"
    rendered = render(project_name="Win Proj")
    for path in rendered.rglob("*"):
        assert _windows_problem(path.name) is None, f"{path}: {_windows_problem(path.name)}"
    lowered = [str(p.relative_to(rendered)).lower() for p in rendered.rglob("*")]
    assert len(lowered) == len(set(lowered)), "two files differ only by case"


def test_template_modal_pin_is_supported_by_the_emulator():
    """The generated project pins a modal range that the emulator serves."""
    import tomllib

    emulator = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text())
    template = (ROOT / "template" / "pyproject.toml.jinja").read_text()
    pin = next(d for d in emulator["project"]["dependencies"] if d.startswith("modal"))
    assert f'"{pin}"' in template
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    tested = next(d for d in dev if d.startswith("modal=="))
    from packaging.specifiers import SpecifierSet

    assert tested.split("==")[1] in SpecifierSet(pin.removeprefix("modal"))


def test_copier_update_round_trip_is_a_no_op(tmp_path):
    """A project updated to the same template version stays byte for byte the same: the
    answers file records everything needed to re-render it."""
    from copier import run_copy, run_update

    # From a clone of the committed template: copier records the commit it rendered, and a
    # working copy with local edits would be recorded as a throw-away commit that update cannot find.
    template = tmp_path / "template"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(template)], check=True, capture_output=True)
    dst = tmp_path / "p"
    run_copy(
        str(template),
        dst,
        data={"gpu": "H100", "gpu_count": 2, "secrets": ["wandb"]},
        defaults=True,
        quiet=True,
        vcs_ref="HEAD",
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "generated"]):
        subprocess.run([*git, *cmd], cwd=dst, check=True, capture_output=True)
    run_update(dst, defaults=True, overwrite=True, quiet=True, vcs_ref="HEAD", unsafe=False)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=dst, capture_output=True, text=True).stdout
    assert status == "", status
    settings = (dst / "modal_jobs" / "settings.py").read_text()
    assert 'GPU: str | None = "H100"' in settings and "GPU_COUNT = 2" in settings
