"""Decision-test coverage: which routes and branches of a compiled program the tests' decisions took.

The branches are enumerated from the compiled program, so they are the ones that can happen:
compile has already dropped clauses after one that always decides. For each route, in order:

| branch | taken when |
| --- | --- |
| `when C → ACTION` | C held and the clause fired (a constant `when true` has only this branch; `hour > 30` none) |
| `when C → false` | C did not hold and the next clause was tried (a `when` without `else`) |
| `when C → else ACTION` | C did not hold and the `else` fired |
| `otherwise ACTION` | no `when` held |
| `ACTION` | a bare, unconditional action fired |
| `no clause fired` | every `when` was false and there was no `otherwise` |
| `route applies` | the route has no action clause: its strategy orders the deployments |

The last two exist only when no clause of the route always decides. Hits come from `Decision.steps`
(a refused decision carries its steps too), so a route reached through `use` or `fallback` counts as well
as the route of the requested model. The implicit route of a model that no route matches is not counted:
it has no text to cover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policyrouter.decision import Decision
from policyrouter.diagnostics import Span
from policyrouter.program import Clause, Program, Route

BranchKind = Literal["true", "false", "else", "otherwise", "do", "none"]


@dataclass(frozen=True, slots=True)
class Branch:
    """One way a route can decide."""

    route: Route
    clause: Clause | None  # None for the fall-through
    kind: BranchKind
    span: Span | None
    text: str

    @property
    def path(self) -> str:
        return self.span.path if self.span is not None else ""

    @property
    def location(self) -> str:
        return str(self.span) if self.span is not None else self.route.location


def branches(program: Program) -> list[Branch]:
    """Every branch of every written route, by file and position, a route's clauses in order."""
    out: list[Branch] = []
    for route in sorted(program.routes, key=_route_position):
        out += _route_branches(route)
    return out


def _route_branches(route: Route) -> list[Branch]:
    out: list[Branch] = []
    for clause in route.clauses:
        if clause.kind == "when":
            cond = f"when {clause.condition_text}"
            if not clause.never:  # `when hour > 30`: its action cannot happen
                out.append(Branch(route, clause, "true", clause.span, f"{cond} → {clause.action.text}"))
            if clause.condition is None:
                continue  # a constant `when true`: the other branch cannot happen
            if clause.otherwise is not None:
                span = clause.otherwise.span or clause.span
                out.append(Branch(route, clause, "else", span, f"{cond} → else {clause.otherwise.text}"))
            else:
                out.append(Branch(route, clause, "false", clause.span, f"{cond} → false"))
        elif clause.kind == "otherwise":
            out.append(Branch(route, clause, "otherwise", clause.span, f"otherwise {clause.action.text}"))
        else:
            out.append(Branch(route, clause, "do", clause.span, clause.action.text))
    if not any(_always_decides(c) for c in route.clauses):
        text = "no clause fired" if route.clauses else "route applies"
        out.append(Branch(route, None, "none", route.span, text))
    return out


def _always_decides(clause: Clause) -> bool:
    return clause.condition is None or clause.otherwise is not None


def _route_position(route: Route) -> tuple[str, int, int]:
    span = route.span
    return (span.path, span.line, span.column) if span is not None else ("", 0, 0)


@dataclass(frozen=True, slots=True)
class BranchHits:
    branch: Branch
    hits: int

    def to_dict(self) -> dict[str, Any]:
        span = self.branch.span
        return {
            "file": span.path if span is not None else None,
            "line": span.line if span is not None else None,
            "column": span.column if span is not None else None,
            "route": self.branch.route.target,
            "kind": self.branch.kind,
            "branch": self.branch.text,
            "hits": self.hits,
        }


@dataclass(frozen=True, slots=True)
class FileCoverage:
    path: str
    covered: int
    total: int

    @property
    def percent(self) -> float:
        return _percent(self.covered, self.total)


@dataclass(frozen=True)
class CoverageReport:
    rows: tuple[BranchHits, ...]
    routes_covered: int
    routes_total: int
    decisions: int

    @property
    def covered(self) -> int:
        return sum(row.hits > 0 for row in self.rows)

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def percent(self) -> float:
        """Share of branches taken, 0–100; 100 when there is nothing to cover."""
        return _percent(self.covered, self.total)

    @property
    def missed(self) -> list[Branch]:
        return [row.branch for row in self.rows if row.hits == 0]

    def files(self) -> list[FileCoverage]:
        covered: Counter[str] = Counter()
        total: Counter[str] = Counter()
        for row in self.rows:
            total[row.branch.path] += 1
            covered[row.branch.path] += row.hits > 0
        return [FileCoverage(path, covered[path], total[path]) for path in total]

    def summary(self) -> str:
        return (
            f"coverage: {self.covered}/{self.total} branches ({self.percent:.1f}%), "
            f"{self.routes_covered}/{self.routes_total} routes, from {_count(self.decisions, 'decision')}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "percent": round(self.percent, 2),
            "branches": {"covered": self.covered, "total": self.total},
            "routes": {"covered": self.routes_covered, "total": self.routes_total},
            "decisions": self.decisions,
            "files": [
                {"file": f.path, "covered": f.covered, "total": f.total, "percent": round(f.percent, 2)}
                for f in self.files()
            ],
            "rows": [row.to_dict() for row in self.rows],
        }

    def render(self) -> str:
        """A table (location, route, branch, hits), a line per file, then the total."""
        header = ("location", "route", "branch", "hits")
        table = [header] + [
            (row.branch.location, row.branch.route.target, row.branch.text, str(row.hits)) for row in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        lines = [
            f"{loc:<{widths[0]}}  {route:<{widths[1]}}  {text:<{widths[2]}}  {hits:>4}".rstrip()
            for loc, route, text, hits in table
        ]
        lines.append("")
        lines += [f"{f.path}: {f.covered}/{f.total} branches ({f.percent:.1f}%)" for f in self.files()]
        lines.append(self.summary())
        return "\n".join(lines)


class Coverage:
    """Counts the branches that decisions of one program took. Feed it with `record`."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.branches = branches(program)
        self._routes = {id(route) for route in program.routes}
        self._hits: Counter[tuple[int, BranchKind]] = Counter()
        self._route_hits: Counter[int] = Counter()
        self.decisions = 0

    def record(self, decision: Decision | None) -> None:
        """Count one decision's steps (a refusal's decision too; None, for no decision, counts nothing)."""
        if decision is None:
            return
        self.decisions += 1
        hits = self._hits
        for step in decision.steps:
            route = step.route
            if id(route) not in self._routes:
                continue  # the implicit route: registry order, nothing written to cover
            self._route_hits[id(route)] += 1
            for result in step.conditions:
                clause = result.clause
                kind: BranchKind = "true" if result.value else ("else" if clause.otherwise is not None else "false")
                hits[id(clause), kind] += 1
            fired = step.fired
            if fired is None:
                hits[id(route), "none"] += 1
            elif fired.kind != "when":  # an `otherwise` or a bare action: no condition to record
                hits[id(fired), fired.kind] += 1

    def record_all(self, decisions: Iterable[Decision | None]) -> Coverage:
        for decision in decisions:
            self.record(decision)
        return self

    def report(self) -> CoverageReport:
        rows = tuple(BranchHits(b, self._hits[_key(b)]) for b in self.branches)
        routes = self.program.routes
        return CoverageReport(
            rows,
            routes_covered=sum(self._route_hits[id(r)] > 0 for r in routes),
            routes_total=len(routes),
            decisions=self.decisions,
        )


def coverage_of(program: Program, decisions: Sequence[Decision | None]) -> CoverageReport:
    return Coverage(program).record_all(decisions).report()


def _key(branch: Branch) -> tuple[int, BranchKind]:
    return (id(branch.clause) if branch.clause is not None else id(branch.route)), branch.kind


def _percent(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
