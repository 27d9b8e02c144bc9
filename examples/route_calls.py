"""Route real LLM calls with the policies of a config directory.

    python examples/route_calls.py policies/subscriptions --model sonnet "Say hello" "Name a colour"
    python examples/route_calls.py policies/swe-agent --model gpt-4o --stream --events events.jsonl "Hi"

API keys come from the environment variables the registry names (`api_key_env`, e.g.
`ANTHROPIC_API_KEY_WORK`); a deployment whose variable is unset is skipped. Each prompt is one call in
one run (`--run NAME`, default a fresh one): the run's hard budget stops the batch cleanly. Events go
to `--events FILE` as JSON lines (default: none). At the end the program prints what the run spent.

Exit status: 0 when every prompt was answered, 1 when a call failed everywhere, 2 when a hard budget
stopped the run, 3 when the config is invalid.

Without any key set, or a local model server, every call fails (each deployment skipped, with its
reason): that is the program working. `tests/executor/test_executor_example.py` runs it against an
OpenAI-compatible server on 127.0.0.1, the same way, with no key of yours.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import policyrouter
from policyrouter import AllDeploymentsFailed, BudgetExceeded, ConfigError, DecisionError, RequestRejected


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        options = policyrouter.ExecutorOptions(retries=args.retries, backoff_base=args.backoff)
        router = policyrouter.load(args.config, state=args.state, events=args.events, executor=options)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 3
    status = 0
    with router, router.run(args.run) as run:
        for prompt in args.prompts:
            messages = [{"role": "user", "content": prompt}]
            try:
                if args.stream:
                    with run.completion(args.model, messages, stream=True, max_tokens=args.max_tokens) as chunks:
                        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                    served = chunks.deployment
                else:
                    response = run.completion(args.model, messages, max_tokens=args.max_tokens)
                    text = response.choices[0].message.content or ""
                    served = response._hidden_params["policyrouter"]["deployment"]
            except BudgetExceeded as e:
                print(f"stopping the run: {e}", file=sys.stderr)
                status = 2
                break
            except (RequestRejected, AllDeploymentsFailed, DecisionError) as e:
                print(f"{prompt!r} failed: {e}", file=sys.stderr)
                status = 1
                continue
            print(f"[{served}] {text}", file=out)
        facts = run.live_facts
        print(f"run {facts.run_id}: spent ${facts.spend('run'):.6f}", file=out)  # type: ignore[attr-defined]
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a config directory: registry.yaml and *.policy")
    parser.add_argument("prompts", nargs="+", help="one call per prompt")
    parser.add_argument("--model", default="sonnet", help="the model to ask for (default: sonnet)")
    parser.add_argument("--stream", action="store_true", help="stream the replies")
    parser.add_argument("--max-tokens", type=int, default=256, help="the most tokens a reply may hold")
    parser.add_argument("--run", default=None, help="the run the calls count against (default: a fresh one)")
    parser.add_argument("--events", default=None, help="append events to this file as JSON lines")
    parser.add_argument("--state", default=None, help="override settings.state, e.g. memory://")
    parser.add_argument("--retries", type=int, default=2, help="tries again on a timeout or 5xx (default: 2)")
    parser.add_argument("--backoff", type=float, default=0.5, help="first wait before a retry, seconds")
    return parser


if __name__ == "__main__":
    sys.exit(main())
