"""schemathesis hooks for FireSight's API (loaded by scripts/schemathesis.sh).

- NDJSON bodies are text in FireSight's document (`type: string`), so they are sent as text.
- Python 3.11's `ast.parse` sometimes raises "AST constructor recursion depth mismatch" (a
  CPython bug) when hypothesis describes a lambda for a strategy's repr; the description is
  cosmetic, so a failing one falls back to the function's name instead of aborting the case.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")

try:
    from hypothesis.internal import lambda_sources
except ImportError:  # another hypothesis than the pinned one: nothing to patch
    lambda_sources = None

if lambda_sources is not None and hasattr(lambda_sources, "lambda_description"):
    _describe = lambda_sources.lambda_description

    def _lambda_description(f):
        try:
            return _describe(f)
        except SystemError:
            return getattr(f, "__name__", "lambda")

    lambda_sources.lambda_description = _lambda_description
