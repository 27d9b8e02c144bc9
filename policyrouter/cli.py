"""`policyrouter` on the command line: check, explain, test.

Exit codes: 0 clean; 1 the config has errors, a decision test failed or a request was refused;
2 the command itself was used wrongly. Bad input is reported as diagnostics, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from policyrouter import decision_tests
from policyrouter.config import Config, config_dirs, display_path, load_config
from policyrouter.diagnostics import Diagnostic, render
from policyrouter.errors import DecisionError, PolicyRouterError
from policyrouter.facts import FactsError, facts_from_assignments
from policyrouter.router import InvalidFacts, Router

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except PolicyRouterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policyrouter", description="Route LLM requests by written policies.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="parse, validate and lint a config, then run its decision tests")
    check.add_argument(
        "directory",
        nargs="?",
        default=None,
        metavar="DIR",
        help="config directory, or a directory of them (default: --config or .)",
    )
    _config_option(check)
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("--notes", action="store_true", help="also show notes (informational findings)")
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.add_argument("--max-diagnostics", type=int, default=50, metavar="N", help="show at most N (text)")
    check.set_defaults(run=cmd_check)

    explain = commands.add_parser("explain", help="show where a request would go, and why")
    explain.add_argument("model")
    _config_option(explain)
    explain.add_argument("--requires", action="append", default=[], metavar="CAP")
    explain.add_argument("--tokens", default="0", metavar="N", help="estimated prompt tokens (`2000`, `50k`)")
    explain.add_argument("--max-tokens", default=None, metavar="N")
    explain.add_argument("--tag", action="append", default=[], metavar="T")
    explain.add_argument(
        "--fact",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dry-run fact, e.g. quota.work=15%% or hour=23 (repeatable)",
    )
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.set_defaults(run=cmd_explain)

    test = commands.add_parser("test", help="run decision tests")
    test.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="YAML decision tests (default: the config's tests/*.yaml)"
    )
    _config_option(test)
    test.add_argument("--format", choices=("text", "json", "github"), default="text")
    test.set_defaults(run=cmd_test)

    fmt = commands.add_parser("fmt", help="rewrite .policy files in the canonical layout")
    fmt.add_argument(
        "paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH", help="files or directories (default: .)"
    )
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    fmt.add_argument("--diff", action="store_true", help="change nothing; print what would change")
    fmt.set_defaults(run=cmd_fmt)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="config directory with registry.yaml and *.policy (default: .)",
    )


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    root = Path(args.directory) if args.directory is not None else args.config
    diagnostics: list[Diagnostic] = []
    outcomes: list[decision_tests.Outcome] = []
    summaries = []
    for directory in config_dirs(root):
        config = load_config(directory, deep=True)
        found = [d.as_error() if args.strict and d.severity == "warning" else d for d in config.diagnostics]
        notes = sum(d.severity == "note" for d in found)
        diagnostics += [d for d in found if args.notes or d.severity != "note"]
        ran: list[decision_tests.Outcome] = []
        if config.program is not None and not any(d.severity == "error" for d in found):
            ran, problems = decision_tests.run_files(Router(config), config.test_files())
            diagnostics += problems
            outcomes += ran
        errors = sum(d.severity == "error" for d in found)
        warnings = sum(d.severity == "warning" for d in found)
        noted = f", {_count(notes, 'note')}" + ("" if args.notes else " (--notes shows them)") if notes else ""
        summaries.append(
            f"{display_path(directory)}: {_count(errors, 'error')}, {_count(warnings, 'warning')}{noted}, "
            f"{decision_tests.summary(ran)} decision tests"
        )
    failed = [o for o in outcomes if not o.passed]
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
    router = _router_or_report(args.config)
    if router is None:
        return EXIT_FAILED
    from policyrouter.quantities import QuantityError, parse_count

    try:
        facts = facts_from_assignments(args.fact) if args.fact else None
        tokens = int(parse_count(args.tokens))
        max_tokens = int(parse_count(args.max_tokens)) if args.max_tokens is not None else None
    except (FactsError, QuantityError) as e:
        print(f"error: {e}" + (f"\n  help: {e.help}" if getattr(e, "help", None) else ""), file=sys.stderr)
        return EXIT_USAGE
    try:
        decision = router.decide(
            args.model,
            requires=args.requires,
            tokens=tokens,
            max_tokens=max_tokens,
            tags=args.tag,
            facts=facts if facts is not None else {},
        )
    except InvalidFacts as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DecisionError as e:
        if args.format == "json":
            print(json.dumps(e.to_dict(), indent=2))
        else:
            print(e.decision.explain() if e.decision is not None else f"refused [{e.code}]: {e.message}")
        return EXIT_FAILED
    print(json.dumps(decision.to_dict(), indent=2) if args.format == "json" else decision.explain())
    return EXIT_OK


# -- test ---------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    router = _router_from(config)
    if router is None:
        return EXIT_FAILED
    files = args.files or config.test_files()
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    outcomes, problems = decision_tests.run_files(router, files)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "diagnostics": [d.to_dict() for d in problems],
                    "tests": [_outcome_dict(o) for o in outcomes],
                    "summary": decision_tests.summary(outcomes),
                },
                indent=2,
            )
        )
    elif args.format == "github":
        for line in [d.github() for d in problems] + [_outcome_github(o) for o in outcomes if not o.passed]:
            print(line)
        print(decision_tests.summary(outcomes))
    else:
        if problems:
            print(render(problems), end="\n\n")
        for outcome in outcomes:
            if not outcome.passed:
                print(outcome.render(), end="\n\n")
        print(decision_tests.summary(outcomes))
    return EXIT_FAILED if problems or any(not o.passed for o in outcomes) else EXIT_OK


# -- fmt ----------------------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace) -> int:
    import difflib

    from policyrouter.errors import ConfigError
    from policyrouter.fmt import format_policy

    files = [f for p in args.paths for f in ([p] if p.is_file() else sorted(p.rglob("*.policy")))]
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    problems: list[Diagnostic] = []
    changed = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            formatted = format_policy(text, display_path(path))
        except ConfigError as e:
            problems += e.diagnostics
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


# -- shared -------------------------------------------------------------------------------------


def _router_or_report(directory: Path) -> Router | None:
    return _router_from(load_config(directory))


def _router_from(config: Config) -> Router | None:
    if config.program is None:
        print(render(config.errors or config.diagnostics), file=sys.stderr)
        return None
    return Router(config)


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
    return f"::error file={span.path},line={span.line},title=decision test failed::{outcome.case.name}: {first}"


if __name__ == "__main__":
    sys.exit(main())
