"""`policyrouter` on the command line: check, explain, test, fmt, schema.

Exit codes: 0 clean; 1 the config has errors, a decision test failed or a request was refused;
2 the command itself was used wrongly. Bad input is reported as diagnostics, never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from policyrouter import __version__
from policyrouter.diagnostics import Diagnostic, did_you_mean, github_property, github_text, render
from policyrouter.errors import ConfigError, DecisionError, PolicyRouterError

# Each command imports what it needs when it runs, so that a cold start pays only for what its own
# command uses (`check` never loads the executor or the state stores, `fmt` never the router).
if TYPE_CHECKING:
    from policyrouter import coverage, decision_tests
    from policyrouter.config import Config
    from policyrouter.filecache import FileCache
    from policyrouter.registry import Registry
    from policyrouter.router import Router
    from policyrouter.state.store import StateStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    _skip_collection_at_exit()
    # ruamel.yaml warns through Python's warnings about YAML that is valid but odd (an anchor defined
    # again: the aliases after it take the new one); printed with ruamel's own source line, that reads
    # like a crash. What the file means is what `check` reports on.
    warnings.filterwarnings("ignore", module="ruamel")
    try:
        return int(args.handler(args))
    except PolicyRouterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as e:
        from policyrouter.state.store import RunIdError

        if not isinstance(e, RunIdError):
            raise
        print(f"error: {e}", file=sys.stderr)  # from $POLICYROUTER_RUN_ID: --run is checked as it is read
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `policyrouter schema | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as e:  # the output cannot be written (a full disk), a file the command needs is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED


def _skip_collection_at_exit() -> None:
    """Python's last act before exiting is a pass of the cyclic collector over every object still
    alive: after `check`, everything it built, for about a tenth of the run. Freezing them first skips
    that pass. Nothing the commands leave needs finalizing: they close their files and stores."""
    atexit.unregister(gc.freeze)  # registered once, however often main() runs in one process
    atexit.register(gc.freeze)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policyrouter", description="Route LLM requests by written policies.")
    parser.add_argument("--version", action="version", version=f"policyrouter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="parse, validate and lint a config, then run its decision tests")
    check.add_argument(
        "directory",
        nargs="?",
        type=_path_arg,
        default=None,
        metavar="DIR",
        help="config directory, or a directory of them (default: --config or .)",
    )
    _config_option(check)
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("--notes", action="store_true", help="also show notes (informational findings)")
    check.add_argument(
        "--format", choices=("text", "json", "github"), default="text", help="text, JSON or GitHub annotations"
    )
    check.add_argument("--max-diagnostics", type=_count_arg, default=50, metavar="N", help="show at most N (text)")
    check.set_defaults(handler=cmd_check)

    explain = commands.add_parser("explain", help="show where a request would go, and why")
    explain.add_argument("model", nargs="?", help="the model asked for (not with --replay)")
    _config_option(explain)
    explain.add_argument(
        "--requires", action="append", default=[], metavar="CAP", help="a capability the request needs (repeatable)"
    )
    explain.add_argument("--tokens", default="0", metavar="N", help="estimated prompt tokens (`2000`, `50k`)")
    explain.add_argument(
        "--max-tokens",
        default=None,
        metavar="N",
        help="the request's max_tokens (`4k`): counted in the context window and the cost",
    )
    explain.add_argument("--tag", action="append", default=[], metavar="T", help="a tag of the request (repeatable)")
    explain.add_argument(
        "--fact",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dry-run fact, e.g. quota.work=15%% or hour=23 (repeatable); with any --fact, facts not given read "
        "as a fresh state, without one the live state is read",
    )
    explain.add_argument(
        "--run", default=None, type=_run_id, metavar="RUN_ID", help="the run whose `run` budget live facts read"
    )
    explain.add_argument(
        "--format", choices=("text", "json"), default="text", help="text, or the decision as JSON (`to_dict()`)"
    )
    explain.add_argument(
        "--replay", type=_path_arg, metavar="EVENTS", help="a JSON-lines events file the executor wrote"
    )
    explain.add_argument("--request-id", metavar="ID", help="with --replay: the request whose decision to replay")
    explain.set_defaults(handler=cmd_explain)

    test = commands.add_parser("test", help="run decision tests")
    test.add_argument(
        "files",
        nargs="*",
        type=_path_arg,
        metavar="FILE",
        help="YAML decision tests, or directories of them (default: the config's tests/*.yaml)",
    )
    _config_option(test)
    test.add_argument(
        "--format",
        choices=("text", "json", "github", "junit"),
        default="text",
        help="text, json, GitHub annotations or JUnit XML (default: text)",
    )
    test.add_argument(
        "--coverage", action="store_true", help="report which routes and branches the decision tests took"
    )
    test.add_argument(
        "--fail-under",
        type=_percent_arg,
        default=None,
        metavar="PERCENT",
        help="exit 1 when branch coverage is below PERCENT (implies --coverage)",
    )
    test.set_defaults(handler=cmd_test)

    fmt = commands.add_parser("fmt", help="rewrite .policy files and registry.yaml in the canonical layout")
    fmt.add_argument(
        "paths",
        nargs="*",
        type=_path_arg,
        default=[Path(".")],
        metavar="PATH",
        help="files or directories (default: .)",
    )
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    fmt.add_argument("--diff", action="store_true", help="change nothing; print what would change")
    fmt.set_defaults(handler=cmd_fmt)

    schema = commands.add_parser("schema", help="print the JSON Schema of registry.yaml, for editors")
    schema.set_defaults(handler=cmd_schema)

    status = commands.add_parser("status", help="quotas, budgets and rate windows as they stand in the live state")
    _config_option(status)
    status.add_argument(
        "--run", default=None, type=_run_id, metavar="RUN_ID", help="the run whose `run` budget to show"
    )
    status.add_argument("--format", choices=("table", "json"), default="table", help="a table, or JSON")
    status.set_defaults(handler=cmd_status)

    reset = commands.add_parser("reset", help="forget live state: a run's spend, or a provider's failures")
    _config_option(reset)
    what = reset.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=_run_id, metavar="RUN_ID", help="forget this run's spend and run-window quotas")
    what.add_argument("--provider", metavar="NAME", help="forget this provider's errors, cooldown and latency")
    reset.set_defaults(handler=cmd_reset)
    return parser


def _run_id(text: str) -> str:
    from policyrouter.state.store import check_run_id

    try:
        return check_run_id(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count is 0 or more, not {text}")
    return value


def _path_arg(text: str) -> Path:
    """A path given on the command line: an empty one (`"$UNSET"`) is a mistake, not the working directory."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path: name a file or a directory (`.` for this one)")
    return Path(text)


def _percent_arg(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage is between 0 and 100, not {text}")
    return value


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=_path_arg,
        default=Path("."),
        metavar="DIR",
        help="config directory with registry.yaml and *.policy (default: .)",
    )


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from policyrouter import decision_tests
    from policyrouter.config import config_dirs, display_path, load_config
    from policyrouter.diagnostics import sort_diagnostics
    from policyrouter.router import Router

    root = Path(args.directory) if args.directory is not None else args.config
    cache = _file_cache()
    diagnostics: list[Diagnostic] = []
    outcomes: list[decision_tests.Outcome] = []
    summaries = []
    for directory in config_dirs(root):
        config = load_config(directory, deep=True, cache=cache)
        found = [d.as_error() if args.strict and d.severity == "warning" else d for d in config.diagnostics]
        notes = sum(d.severity == "note" for d in found)
        diagnostics += [d for d in found if args.notes or d.severity != "note"]
        ran: list[decision_tests.Outcome] = []
        if config.program is not None and not any(d.severity == "error" for d in found):
            ran, problems = decision_tests.run_files(Router(config), config.test_files(), cache)
            problems = [d.as_error() if args.strict and d.severity == "warning" else d for d in problems]
            diagnostics += problems
            found += problems
            outcomes += ran
        errors = sum(d.severity == "error" for d in found)
        warnings = sum(d.severity == "warning" for d in found)
        noted = f", {_count(notes, 'note')}" + ("" if args.notes else " (--notes shows them)") if notes else ""
        summaries.append(
            f"{display_path(directory)}: {_count(errors, 'error')}, {_count(warnings, 'warning')}{noted}, "
            f"{decision_tests.summary(ran)} decision tests"
        )
    failed = [o for o in outcomes if not o.passed]
    diagnostics = sort_diagnostics(diagnostics)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "diagnostics": [d.to_dict() for d in diagnostics],
                    "tests": [_outcome_dict(o) for o in outcomes],
                },
                indent=2,
            )
        )
    elif args.format == "github":
        lines = [d.github() for d in diagnostics] + [_outcome_github(o) for o in failed]
        print("\n".join(lines)) if lines else None
    else:
        if diagnostics:
            print(render(diagnostics, "text", args.max_diagnostics), end="\n\n")
        for outcome in failed:
            print(outcome.render(), end="\n\n")
        print("\n".join(summaries))
    has_errors = any(d.severity == "error" for d in diagnostics)
    return EXIT_FAILED if has_errors or failed else EXIT_OK


# -- explain ------------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    usage = _explain_usage(args)
    if usage is not None:
        print(f"error: {usage}", file=sys.stderr)
        return EXIT_USAGE
    from policyrouter.config import load_config

    config = load_config(args.config, cache=_file_cache())
    registry = config.registry
    missing = _missing_state_file(registry, note=False) if registry and not (args.fact or args.replay) else None
    router = _router_from(config, run_id=args.run, state=None if missing is None else "memory://")
    if router is None:
        return EXIT_FAILED
    if args.replay is not None:
        return _replay(router, args)
    from policyrouter.facts import FactsError, facts_from_assignments
    from policyrouter.quantities import QuantityError
    from policyrouter.router import InvalidFacts

    try:
        facts = facts_from_assignments(args.fact) if args.fact else None
        tokens = _token_count("--tokens", args.tokens)
        max_tokens = _token_count("--max-tokens", args.max_tokens) if args.max_tokens is not None else None
    except (FactsError, QuantityError) as e:
        hint = getattr(e, "help", None)
        print(f"error: {e}" + (f"\n  help: {hint}" if hint else ""), file=sys.stderr)
        return EXIT_USAGE
    try:
        decision = router.decide(
            args.model, requires=args.requires, tokens=tokens, max_tokens=max_tokens, tags=args.tag, facts=facts
        )
    except InvalidFacts as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DecisionError as e:
        if e.decision is None:
            raise
        decision = e.decision
    finally:
        router.close()
    print(json.dumps(decision.to_dict(), indent=2) if args.format == "json" else decision.explain())
    return EXIT_OK if decision.error is None else EXIT_FAILED


def _token_count(option: str, text: str) -> int:
    from policyrouter.decision import token_count
    from policyrouter.quantities import QuantityError, parse_count

    try:
        return token_count(option, parse_count(text))
    except (QuantityError, ValueError):  # not a count, or more tokens than a float counts exactly
        raise QuantityError(f"`{option} {text}`: a number of tokens is written like `2000`, `8k` or `1.5M`") from None


def _explain_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with how explain was called, or None."""
    if args.replay is None and args.model is None:
        return "give a MODEL, or --replay EVENTS with --request-id ID"
    if args.replay is not None and args.model is not None:
        return "give a MODEL or --replay EVENTS, not both: a replay decides the recorded request again"
    if args.replay is not None and args.request_id is None:
        return "--replay needs --request-id ID, the request to decide again"
    if args.replay is None and args.request_id is not None:
        return "--request-id goes with --replay EVENTS"
    return None


def _replay(router: Router, args: argparse.Namespace) -> int:
    from policyrouter.replay import find_decision, replay

    result = replay(router, find_decision(args.replay, args.request_id))
    print(json.dumps(result.to_dict(), indent=2) if args.format == "json" else result.render())
    return EXIT_OK


# -- test ---------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    from policyrouter import decision_tests
    from policyrouter.config import display_path, load_config

    named = _test_files(args.files)
    if named is None:
        return EXIT_USAGE
    cache = _file_cache()
    config = load_config(args.config, cache=cache)
    router = _router_from(config)
    if router is None:
        return EXIT_FAILED
    files = named if args.files else config.test_files()
    outcomes, problems = decision_tests.run_files(router, files, cache)
    report = None
    if args.coverage or args.fail_under is not None:
        from policyrouter import coverage

        report = coverage.coverage_of(router.program, [o.decision for o in outcomes])
    under_text = ""
    shown = round(report.percent, 2) if report is not None else 100.0  # as JSON shows it: 66.67, not 66.666…
    if report is not None and args.fail_under is not None and shown < args.fail_under:
        digits = 1 if round(shown, 1) == shown else 2
        under_text = f"coverage {shown:.{digits}f}% is below --fail-under {args.fail_under:g}%"
    under = bool(under_text)
    if args.format == "json":
        out: dict[str, object] = {
            "diagnostics": [d.to_dict() for d in problems],
            "tests": [_outcome_dict(o) for o in outcomes],
            "summary": decision_tests.summary(outcomes),
        }
        if report is not None:
            out["coverage"] = {**report.to_dict(), "fail_under": args.fail_under, "passed": not under}
        print(json.dumps(out, indent=2))
    elif args.format == "junit":
        print(decision_tests.junit_xml(outcomes, problems, files), end="")
        warned = [d for d in problems if d.severity != "error"]
        if warned:  # not test results: to the log, as coverage is
            print(render(warned), file=sys.stderr)
        if report is not None:  # stdout is the XML, often redirected to a file: coverage goes to the log
            print(report.render(), file=sys.stderr)
        if under:
            print(f"error: {under_text}", file=sys.stderr)
    elif args.format == "github":
        for line in [d.github() for d in problems] + [_outcome_github(o) for o in outcomes if not o.passed]:
            print(line)
        if report is not None:
            for branch in report.missed:
                print(_missed_github(branch))
            print(report.render())
        if under:
            print(f"::error title=decision-test coverage::{github_text(under_text)}")
        print(decision_tests.summary(outcomes))
    else:
        if problems:
            print(render(problems), end="\n\n")
        for outcome in outcomes:
            if not outcome.passed:
                print(outcome.render(), end="\n\n")
        if report is not None:
            print(report.render(), end="\n\n")
        print(decision_tests.summary(outcomes))
        if not files:
            where = ", ".join(f"`{display_path(p)}`" for p in args.files or [args.config / "tests"])
            print(f"note: no decision tests: no `*.yaml` file in {where}", file=sys.stderr)
        if under:
            print(f"error: {under_text}", file=sys.stderr)
    failed = any(d.severity == "error" for d in problems) or any(not o.passed for o in outcomes)
    return EXIT_FAILED if failed or under else EXIT_OK


def _missed_github(branch: coverage.Branch) -> str:
    span = branch.span
    where = f"file={github_property(span.path)},line={span.line},col={span.column}," if span is not None else ""
    text = github_text(f"{branch.route.target}: {branch.text}")
    return f"::notice {where}title=not covered by decision tests::{text}"


def _test_files(paths: list[Path]) -> list[Path] | None:
    """The decision-test files named on the command line, a directory standing for its YAML files;
    None (the problem printed) when one is missing or is a config directory."""
    from policyrouter.config import yaml_files

    files = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif (path / "registry.yaml").is_file():
            print(f"error: `{path}` is a config directory, not decision tests", file=sys.stderr)
            print(f"  help: policyrouter test --config {path}", file=sys.stderr)
            return None
        elif path.is_dir():
            files += yaml_files(path)
        else:
            problem = "not a regular file" if path.exists() else "no such file or directory"
            print(f"error: {problem}: {path}", file=sys.stderr)
            return None
    return list({os.path.realpath(f): f for f in files}.values())  # a file named twice runs once


# -- schema -------------------------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace) -> int:
    from policyrouter.registry_schema import registry_json_schema

    print(json.dumps(registry_json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


# -- fmt ----------------------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace) -> int:
    import difflib

    from policyrouter.config import REGISTRY_FILE, display_path
    from policyrouter.fmt import format_policy
    from policyrouter.registry_fmt import format_registry
    from policyrouter.text_files import read_config_text, unreadable

    found = [f for p in args.paths for f in ([p] if p.is_file() else _formattable(p))]
    named: dict[Path, Path] = {}
    for f in found:  # a file named twice (`. a.policy`) is formatted, and reported, once
        named.setdefault(f.resolve(), f)
    files = list(named.values())
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    if not files:
        where = ", ".join(f"`{display_path(p)}`" for p in args.paths)
        print(f"note: no `*.policy` or `{REGISTRY_FILE}` file in {where}: nothing to format", file=sys.stderr)
    problems: list[Diagnostic] = []
    changed = []
    for path in files:
        try:
            text = read_config_text(path, display_path(path), "config-unreadable")
            formatter = format_registry if path.name == REGISTRY_FILE else format_policy
            formatted = formatter(text, display_path(path))
        except ConfigError as e:
            problems += e.diagnostics
            continue
        except OSError as e:
            problems.append(unreadable("config-unreadable", display_path(path), e))
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.diff:
            shown = display_path(path)
            sys.stdout.writelines(
                difflib.unified_diff(text.splitlines(keepends=True), formatted.splitlines(keepends=True), shown, shown)
            )
        elif not args.check:
            path.write_text(formatted, encoding="utf-8")
    if problems:
        print(render(problems), file=sys.stderr)
    if args.check:
        for path in changed:
            print(f"would reformat {display_path(path)}")
    elif not args.diff:
        for path in changed:
            print(f"reformatted {display_path(path)}")
    if problems or ((args.check or args.diff) and changed):
        return EXIT_FAILED
    return EXIT_OK


def _formattable(directory: Path) -> list[Path]:
    """The files `fmt` formats below a directory: policies and registries."""
    from policyrouter.config import REGISTRY_FILE

    return sorted([*directory.rglob("*.policy"), *directory.rglob(REGISTRY_FILE)])


# -- status and reset ---------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from policyrouter.state import open_store, status_report

    registry = _registry_or_report(args.config)
    if registry is None:
        return EXIT_FAILED
    options = {"run_id": args.run} if args.run else {}
    missing = _missing_state_file(registry)
    if missing is not None:  # the file's state, not made yet: name it, read it as a fresh one
        from policyrouter.state.memory import MemoryStore

        store: StateStore = MemoryStore(registry, f"sqlite:///{missing.resolve()}", **options)
    else:
        store = open_store(registry, **options)
    with store:
        print(status_report(registry, store, args.format, run_id=args.run))
    return EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    from policyrouter.state import open_store

    registry = _registry_or_report(args.config)
    if registry is None:
        return EXIT_FAILED
    if args.provider is not None and args.provider not in registry.providers:
        known = ", ".join(f"`{p}`" for p in registry.providers) or "none"
        hint = did_you_mean(args.provider, registry.providers) or f"the registry's providers: {known}"
        print(f"error: unknown provider `{args.provider}`\nhelp: {hint}", file=sys.stderr)
        return EXIT_USAGE
    if _missing_state_file(registry) is not None:  # nothing recorded: nothing to forget, no file to make
        gone = 0
    else:
        # the run to forget is named, or none is: not $POLICYROUTER_RUN_ID, which a bad value would fail on
        with open_store(registry, run_id=args.run or "policyrouter-reset") as store:
            gone = store.reset(run_id=args.run, provider=args.provider)
    print(f"forgot {gone} counter{'s' if gone != 1 else ''}")
    return EXIT_OK


def _missing_state_file(registry: Registry, note: bool = True) -> Path | None:
    """The SQLite state file, when it does not exist yet (with a note, unless the output shows the
    facts read). `explain`, `status` and `reset` only read what is recorded, and nothing recorded
    reads as a fresh state: opening the store would make the file, in the config directory by
    default, and fail where that is read-only."""
    from policyrouter.config import display_path
    from policyrouter.state.url import state_file

    path = state_file(registry)
    if path is None or path.exists():
        return None
    if note:
        print(f"note: no state recorded yet (no file {display_path(path)}): a fresh state", file=sys.stderr)
    return path


def _registry_or_report(directory: Path) -> Registry | None:
    from policyrouter.config import config_missing, read_registry

    missing = config_missing(directory)
    if missing is not None:
        print(render([missing]), file=sys.stderr)
        return None
    try:
        return read_registry(directory / "registry.yaml", _file_cache())
    except ConfigError as e:
        print(render(e.diagnostics), file=sys.stderr)
        return None


# -- shared -------------------------------------------------------------------------------------


def _file_cache() -> FileCache | None:
    """Where what was read from unchanged config files is kept between runs (see policyrouter.filecache)."""
    from policyrouter.filecache import FileCache

    return FileCache.for_user()


def _router_from(config: Config, run_id: str | None = None, state: str | None = None) -> Router | None:
    from policyrouter.router import Router

    if config.program is None:
        print(render(config.errors or config.diagnostics), file=sys.stderr)
        return None
    return Router(config, run_id=run_id, state=state)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _outcome_dict(outcome: decision_tests.Outcome) -> dict[str, object]:
    span = outcome.case.span
    return {
        "name": outcome.case.name,
        "file": span.path,
        "line": span.line,
        "passed": outcome.passed,
        "message": outcome.message,
    }


def _outcome_github(outcome: decision_tests.Outcome) -> str:
    span = outcome.case.span
    first = outcome.message.splitlines()[0] if outcome.message else ""
    return f"::error file={github_property(span.path)},line={span.line},title=decision test failed::" + github_text(
        f"{outcome.case.name}: {first}"
    )


if __name__ == "__main__":
    sys.exit(main())
