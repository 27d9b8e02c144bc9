"""The pytest plugin, run as users run it: pytest in a subprocess on a copy of tests/sample_project.

The package need not be installed: every run passes `-p policyrouter.pytest_plugin` and puts the
repository on PYTHONPATH. One test installs the entry point of pyproject.toml (as a bare
`.dist-info` on PYTHONPATH) to check that pytest also finds the plugin by itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from policyrouter.config import load_config
from policyrouter.decision_tests import load_cases, run_files
from policyrouter.pytest_plugin import is_decision_test_file
from policyrouter.router import Router

REPO = Path(__file__).parent.parent
SAMPLE = Path(__file__).parent / "sample_project"
PLUGIN = "policyrouter.pytest_plugin"

SAMPLE_ITEMS = [
    "tests/decisions.yaml::work first while it has quota",
    "tests/decisions.yaml::personal first under the margin",
    "tests/decisions.yaml::both plans spent",
    "tests/decisions.yaml::over the run budget",
    "tests/test_routing.py::test_work_plan_first",
    "tests/test_routing.py::test_gpt4o_when_both_plans_are_spent",
    "tests/test_routing.py::test_refused_over_the_run_budget",
    "tests/test_routing.py::test_the_decision_comes_back",
]

WRONG_CASE = """
- name: deliberately wrong
  request: {model: sonnet}
  facts: {quota: {work: 10%}}
  expect: {order: [work, personal]}
"""


def run_pytest(
    cwd: Path, *args: str, plugin: bool = True, autoload: bool = False, pythonpath: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess; without `autoload`, no installed plugin loads (faster, and only ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(["-p", PLUGIN] if plugin else []), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the sample project, free to change."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample", ignore=shutil.ignore_patterns("__pycache__")))


def passed_items(output: str) -> list[str]:
    return [line.rsplit(" PASSED", 1)[0] for line in output.splitlines() if " PASSED" in line]


# -- which files are decision tests -------------------------------------------------------------


def test_decision_test_files_are_the_yaml_in_a_config_dirs_tests(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text("providers: {}\n")
    (tmp_path / "tests" / "deeper").mkdir(parents=True)
    for name in ("a.yaml", "b.yml", "c.json", "deeper/d.yaml"):
        (tmp_path / "tests" / name).write_text("[]\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "e.yaml").write_text("[]\n")
    assert is_decision_test_file(tmp_path / "tests" / "a.yaml")
    assert is_decision_test_file(tmp_path / "tests" / "b.yml")
    assert not is_decision_test_file(tmp_path / "tests" / "c.json")
    assert not is_decision_test_file(tmp_path / "tests" / "deeper" / "d.yaml")
    assert not is_decision_test_file(tmp_path / "other" / "e.yaml")
    assert not is_decision_test_file(tmp_path / "registry.yaml")
    # exactly what `policyrouter test` runs in that directory
    config_files = load_config(tmp_path).test_files()
    assert sorted(p.name for p in config_files) == ["a.yaml", "b.yml"]


def test_a_tests_folder_without_a_registry_beside_it_is_not_a_config(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "a.yaml").write_text("[]\n")
    assert not is_decision_test_file(tmp_path / "tests" / "a.yaml")


def test_the_repositorys_golden_yaml_is_not_collected() -> None:
    golden = sorted((REPO / "tests" / "golden").rglob("*.yaml"))
    assert golden, "the golden registry files moved: update this test"
    assert not any(is_decision_test_file(p) for p in golden)
    result = run_pytest(REPO, "--collect-only", "-q", "-o", "addopts=", "tests/golden")
    assert result.returncode == 5, result.stdout + result.stderr  # 5: no tests collected
    assert "no tests collected" in result.stdout


def test_the_shipped_policies_tests_are_collected_one_item_per_case() -> None:
    result = run_pytest(REPO, "--collect-only", "-q", "-o", "addopts=", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    expected = [
        f"{path.relative_to(REPO).as_posix()}::{case.name}"
        for directory in sorted((REPO / "policies").iterdir())
        for path in load_config(directory).test_files()
        for case in load_cases(path)[0]
    ]
    assert len(expected) > 20
    assert collected == expected


def test_the_repositorys_own_run_leaves_the_sample_project_alone() -> None:
    """With the repository's config (rootdir = the repo), nothing under tests/sample_project is collected."""
    result = run_pytest(REPO, "-c", "pyproject.toml", "--collect-only", "-q", "-o", "addopts=", "tests/sample_project")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no tests collected" in result.stdout


# -- the sample project -------------------------------------------------------------------------


def test_the_sample_projects_cases_are_collected_and_pass(sample: Path) -> None:
    result = run_pytest(sample, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed_items(result.stdout) == SAMPLE_ITEMS
    assert "8 passed" in result.stdout


def test_yaml_items_carry_the_policyrouter_marker(sample: Path) -> None:
    result = run_pytest(sample, "-v", "-m", "policyrouter")
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed_items(result.stdout) == SAMPLE_ITEMS[:4]


def test_a_wrong_case_fails_with_the_cli_text(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (sample / "tests" / "decisions.yaml").open("a") as f:
        f.write(WRONG_CASE)
    result = run_pytest(sample, "-v")
    assert result.returncode == 1
    assert "tests/decisions.yaml::deliberately wrong FAILED" in result.stdout
    assert "7 passed" not in result.stdout and "8 passed" in result.stdout
    # the failure is the CLI's rendering, line for line (paths relative to the same directory)
    monkeypatch.chdir(sample)
    config = load_config(Path("."))
    outcomes, _ = run_files(Router(config), config.test_files())
    [failed] = [o for o in outcomes if not o.passed]
    rendered = failed.render()
    assert "expected order [sonnet@work, sonnet@personal]" in rendered
    assert "actual order [sonnet@personal, sonnet@work, gpt-4o@openai]" in rendered
    assert rendered in result.stdout
    assert "Traceback" not in result.stdout


def test_a_case_with_a_typo_is_a_failing_item(sample: Path) -> None:
    with (sample / "tests" / "decisions.yaml").open("a") as f:
        f.write("\n- name: typo\n  request: {model: sonnet, tokenz: 5, tags: batch}\n  expect: {first: work}\n")
    result = run_pytest(sample, "-rf")
    assert result.returncode == 1
    assert "unknown key `tokenz`" in result.stdout
    assert "help: did you mean `tokens`?" in result.stdout
    assert "8 passed" in result.stdout
    # two problems on one line: two items, each with an id of its own
    failed = sorted(line.split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("FAILED"))
    assert [f.rsplit(" at ", 1)[-1] for f in failed] == ["22:28", "22:45"], failed
    assert len(set(failed)) == 2


def test_a_broken_config_is_a_readable_collection_error(sample: Path) -> None:
    policy = sample / "routing.policy"
    policy.write_text(policy.read_text().replace("prefer work", "prefer wrok"))
    result = run_pytest(sample)
    assert result.returncode == 2  # interrupted: errors during collection
    assert "cannot load `.`" in result.stdout
    assert "unknown provider `wrok`" in result.stdout
    assert "did you mean `work`?" in result.stdout
    assert "Traceback" not in result.stdout


def test_assert_routes_failure_shows_expected_actual_and_why(sample: Path) -> None:
    (sample / "tests" / "test_wrong.py").write_text(
        textwrap.dedent(
            """\
            from policyrouter.pytest_plugin import assert_routes


            def test_wrong(policy_router):
                assert_routes(policy_router, "sonnet", ["work", "personal"], facts={"quota": {"work": "10%"}})


            def test_wrong_error(policy_router):
                assert_routes(policy_router, "sonnet", error="budget_exceeded")
            """
        )
    )
    result = run_pytest(sample, "tests/test_wrong.py")
    assert result.returncode == 1
    out = result.stdout
    assert "E       AssertionError: expected order [sonnet@work, sonnet@personal]" in out
    assert "E         actual order [sonnet@personal, sonnet@work, gpt-4o@openai]" in out
    assert "E         when quota(work) > 20%  → false  (quota(work) = 10%)" in out
    assert "E       AssertionError: expected error budget_exceeded" in out
    assert "E         actual order [sonnet@work, sonnet@personal, gpt-4o@openai]" in out
    assert "pytest_plugin.py" not in out  # the helper's own frame is hidden
    assert "2 failed" in out


def test_a_decision_that_reads_the_clock_warns(sample: Path) -> None:
    # With 10% of work's quota left, personal comes first at any hour, so the tests pass whenever they
    # run; those not given `hour` read it from the clock.
    policy = sample / "routing.policy"
    clause = "when hour >= 22 and quota(work) < 5% only work\n    when quota(work) > 20%"
    policy.write_text(policy.read_text().replace("when quota(work) > 20%", clause))
    (sample / "tests" / "test_clock.py").write_text(
        textwrap.dedent(
            """\
            from policyrouter.pytest_plugin import assert_routes


            def test_any_hour(policy_router):
                assert_routes(policy_router, "sonnet", first="personal", facts={"quota": {"work": "10%"}, "hour": 23})
                assert_routes(policy_router, "sonnet", first="personal", facts={"quota": {"work": "10%"}})
            """
        )
    )
    case = "  request: {model: sonnet}\n  facts: {quota: {work: 10%}}\n  expect: {first: personal}\n"
    allowed = "# policyrouter: allow test-reads-clock\n- name: allowed to read it\n" + case  # as `test` allows it
    (sample / "tests" / "clock.yaml").write_text("- name: personal at any hour\n" + case + allowed)
    result = run_pytest(sample, "tests/test_clock.py", "tests/clock.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "3 passed, 2 warnings" in out
    assert "tests/test_clock.py:6: UserWarning: the decision read `hour` (" in out  # the second call only
    assert "PytestWarning: `personal at any hour` read `hour` (" in out
    assert "facts: {hour: " in out


def test_assert_routes_checks_its_arguments(sample: Path) -> None:
    (sample / "tests" / "test_args.py").write_text(
        textwrap.dedent(
            """\
            import pytest

            from policyrouter.pytest_plugin import assert_routes


            def test_two_expectations(policy_router):
                with pytest.raises(TypeError, match="exactly one of"):
                    assert_routes(policy_router, "sonnet", ["work"], first="work")


            def test_none(policy_router):
                with pytest.raises(TypeError, match="exactly one of"):
                    assert_routes(policy_router, "sonnet")


            def test_a_string_order(policy_router):
                with pytest.raises(TypeError, match="first="):
                    assert_routes(policy_router, "sonnet", "work")


            def test_a_list_as_first(policy_router):  # was "expected first sonnet@['work']"
                with pytest.raises(TypeError, match="`first` is one name"):
                    assert_routes(policy_router, "sonnet", first=["work"])


            def test_an_unknown_refusal_code(policy_router):
                with pytest.raises(ValueError, match="did you mean `no_route`"):
                    assert_routes(policy_router, "sonnet", error="no-route")


            def test_one_capability_as_a_string_is_one_name(policy_router):
                # it was split into letters: `t`, `o`, `l`, `s`, a refusal for capabilities no one has
                assert_routes(policy_router, "sonnet", first="work", requires="tools", tags="batch")
            """
        )
    )
    result = run_pytest(sample, "tests/test_args.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


# -- where the fixture's config comes from ------------------------------------------------------


@pytest.fixture
def with_alt(sample: Path) -> Path:
    """The sample plus `alt/`, the same registry with a policy that always puts personal first."""
    alt = sample / "alt"
    alt.mkdir()
    shutil.copy(sample / "registry.yaml", alt / "registry.yaml")
    (alt / "alt.policy").write_text("route sonnet prefer personal\n")
    return sample


def test_the_fixture_defaults_to_the_rootdir(with_alt: Path) -> None:
    result = run_pytest(with_alt, "tests/test_routing.py::test_work_plan_first")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "option", [("--policyrouter-config", "alt"), ("--policyrouter-config=alt",), ("-o", "policyrouter_config=alt")]
)
def test_the_fixture_takes_the_config_from_the_option_or_ini(with_alt: Path, option: tuple[str, ...]) -> None:
    result = run_pytest(with_alt, "tests/test_routing.py::test_work_plan_first", *option)
    assert result.returncode == 1
    assert "actual order [sonnet@personal, sonnet@work]" in result.stdout
    assert "alt/alt.policy:1:1" in result.stdout


def test_the_ini_option_is_relative_to_the_ini_file(with_alt: Path) -> None:
    (with_alt / "tests" / "sub").mkdir()
    result = run_pytest(
        with_alt / "tests" / "sub", "../test_routing.py::test_work_plan_first", "-o", "policyrouter_config=alt"
    )
    assert result.returncode == 1
    assert "actual order [sonnet@personal, sonnet@work]" in result.stdout


def test_a_config_the_fixture_cannot_load_fails_readably(sample: Path) -> None:
    result = run_pytest(sample, "tests/test_routing.py", "--policyrouter-config", "nowhere")
    assert result.returncode == 1
    assert "cannot load `nowhere`" in result.stdout
    assert "no directory `nowhere`" in result.stdout
    assert "4 errors" in result.stdout


# -- the entry point ----------------------------------------------------------------------------


def _entry_points() -> str:
    """The `[project.entry-points.pytest11]` table of pyproject.toml, as entry_points.txt lines."""
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r"^\[project\.entry-points\.pytest11\]\n((?:[^\[\n].*\n|\n)*)", text, re.MULTILINE)
    assert match, "pyproject.toml has no [project.entry-points.pytest11]"
    lines = []
    for line in match.group(1).splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = (part.strip().strip('"') for part in line.split("=", 1))
            lines.append(f"{name} = {value}")
    return "[pytest11]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("explicit", [False, True])
def test_the_entry_point_loads_the_plugin(sample: Path, tmp_path: Path, explicit: bool) -> None:
    """Installed, pytest loads the plugin by itself; `-p policyrouter.pytest_plugin` as well is no conflict."""
    site = tmp_path / "site"
    info = site / "policyrouter-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: policyrouter\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(_entry_points())
    result = run_pytest(sample, "-v", plugin=explicit, autoload=True, pythonpath=(site,))
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed_items(result.stdout) == SAMPLE_ITEMS


def test_without_the_plugin_the_yaml_is_not_collected(sample: Path) -> None:
    result = run_pytest(sample, "--collect-only", "-q", plugin=False)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected == SAMPLE_ITEMS[4:]
