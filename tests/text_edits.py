"""Random edits of config text, as a careless hand or paste makes them: characters cut, tokens of the
policy language and of YAML put in, control characters, huge numbers. For tests that feed the shipped
configs, edited, to a reader."""

from __future__ import annotations

from hypothesis import strategies as st

# Pieces of policies and of YAML, and characters that trip readers up; each kind as likely as the others.
PIECES = st.one_of(
    st.sampled_from(["route", "when", "prefer", "else", "use", "only", "avoid", "deny", "fallback", "strategy"]),
    st.sampled_from(["requires", "let", "and", "or", "not", "quota(", "spend(", 'tag("', "tokens", "errors("]),
    st.sampled_from(["{", "}", "(", ")", "[", "]", "%", ">", "<=", "==", "=", ":", ",", "-", "*", "#", '"', "'"]),
    st.sampled_from(["10k", "1.5M", "1e309", "-1", "0", "99999999999999999999", "5h", "20%", "$", "null", "~"]),
    st.sampled_from(["&a", "*a", "<<: *a", "!!python/object:os.system", "---", "...", "yes", "? "]),
    st.sampled_from(["\n", "\n  ", "\r\n", "\t", "\x00", "\x07", "\x1b", "\u00e9", "\u2028", "\ufeff", "\U0001f600"]),
)
EDITS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1),  # where, as a share of the text
        st.sampled_from(["cut", "insert", "replace", "repeat"]),
        st.integers(min_value=0, max_value=24),  # how many characters it takes
        PIECES,
    ),
    min_size=1,
    max_size=4,
)


def edit(text: str, edits: list[tuple[float, str, int, str]]) -> str:
    for where, action, length, piece in edits:
        i = int(where * len(text))
        j = min(len(text), i + length)
        if action == "cut":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + piece + text[i:]
        elif action == "replace":
            text = text[:i] + piece + text[j:]
        else:  # a stretch of the text again, as a careless paste would
            text = text[:i] + text[i:j] + text[i:]
    return text
