"""Random policies for property tests: every statement form, expressions nested a few deep, and
tokens laid out at random with comments between statements. The names fit the golden registry
(`tests/golden/policies/registry.yaml`), though a random policy need not make sense there."""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = st.sampled_from(["sonnet", "gpt-4o", "local-coder", "work", "personal", "openai", "tools", "vision"])
LITERALS = st.sampled_from(["20%", "2.5%", "$5", "$0.25", "3", "8k", "1.5M", "800ms", "30s", "5m", '"batch"', "true"])
FACTS = st.sampled_from(
    ["quota(work)", "spend(run)", "budget(month)", "errors(openai)", 'tag("batch")', "hour", "tokens"]
)


def _expressions() -> st.SearchStrategy[str]:
    atoms = st.one_of(FACTS, LITERALS, st.sampled_from(["tight", "late"]))
    comparisons = st.builds(
        lambda a, op, b: f"{a} {op} {b}", atoms, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), atoms
    )
    members = st.builds(lambda a, xs: f"{a} in ({', '.join(xs)})", atoms, st.lists(LITERALS, min_size=1, max_size=3))
    leaves = st.one_of(atoms, comparisons, members)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda a: f"not {a}", inner),
            st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
            st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a: f"({a})", inner),
        ),
        max_leaves=6,
    )


def _actions() -> st.SearchStrategy[str]:
    names = st.lists(NAMES, min_size=1, max_size=3).map(", ".join)
    return st.one_of(
        st.builds(lambda verb, ns: f"{verb} {ns}", st.sampled_from(["prefer", "only", "avoid"]), names),
        st.builds(lambda m: f"use {m}", NAMES),
        st.just('deny "paused: say \\"why\\""'),
    )


def _clauses() -> st.SearchStrategy[str]:
    names = st.lists(NAMES, min_size=1, max_size=3).map(", ".join)
    action = _actions()
    when = st.builds(
        lambda e, a, o: f"when {e} {a}" + (f" else {o}" if o else ""),
        _expressions(),
        action,
        st.one_of(st.none(), action, st.sampled_from(["personal", "work, openai"])).filter(lambda o: True),
    )
    return st.one_of(
        st.builds(lambda ns: f"requires {ns}", names),
        st.builds(lambda s: f"strategy {s}", st.sampled_from(["in_order", "cheapest", "round_robin"])),
        st.builds(lambda ns: f"fallback {ns}", names),
        when,
        st.builds(lambda a: f"otherwise {a}", action),
        action,
    )


def _statement() -> st.SearchStrategy[str]:
    route = st.builds(
        lambda target, clauses, block: (
            f"route {target} " + ("{ " + " ".join(clauses) + " }" if block else " ".join(clauses))
        ),
        st.sampled_from(["sonnet", "gpt-4o", "claude-*", "*"]),
        st.lists(_clauses(), min_size=1, max_size=4),
        st.booleans(),
    )
    let = st.builds(lambda n, e: f"let {n} = {e}", st.sampled_from(["tight", "late"]), _expressions())
    return st.one_of(route, route, let)


@st.composite
def policies(draw: st.DrawFn) -> str:
    """A policy that parses, its tokens laid out at random, with comments between statements."""
    statements = draw(st.lists(_statement(), min_size=1, max_size=4))
    out = []
    for text in statements:
        if draw(st.booleans()):
            out.append(f"# {draw(st.sampled_from(['note', 'why this route', 'tbd']))}\n")
        words = text.split(" ")
        # half the statements on one line (as most are written), half laid out at random, some with
        # comments between their words
        glue = st.just(" ") if draw(st.booleans()) else st.sampled_from([" ", "  ", "\n", "\n    ", " \n", "  # mid\n"])
        out.append("".join(w + draw(glue) for w in words).rstrip())
        out.append(draw(st.sampled_from(["\n", "\n\n", "  # trailing\n"])))
    return "".join(out)
