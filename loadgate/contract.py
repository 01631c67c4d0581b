"""The file contract between the Locust side (writers) and the gate, report and job (readers).

One source of truth for: the exit codes, the files a run leaves under its CSV prefix, the LLM metric
type names and units, and the fields of ``PREFIX_loadgate.json`` (run metadata) and
``PREFIX_llm_summary.json`` (LLM scalars). Writers and readers import these names; a round-trip test
writes with the harness and reads with the gate. Imports neither Locust nor gevent.
"""

from __future__ import annotations

# -- exit codes (the job, the gate, the Locust plugin's setting errors) -------------------------------
EXIT_PASS = 0  # every threshold holds
EXIT_BREACH = 1  # a threshold is breached, or has no data, or the run lost capacity
EXIT_BAD_INPUT = 2  # bad input, or no valid run could be made: never a pass

# -- files under the CSV prefix: PREFIX + suffix ------------------------------------------------------
STATS_CSV = "_stats.csv"  # Locust's, rewritten from the final totals at the end
STATS_HISTORY_CSV = "_stats_history.csv"  # Locust's (--csv-full-history for per-name windows)
FAILURES_CSV = "_failures.csv"  # Locust's
EXCEPTIONS_CSV = "_exceptions.csv"  # Locust's
LLM_STATS_CSV = "_llm_stats.csv"  # loadgate: TTFT/ITL/... per endpoint, same columns as _stats.csv
LLM_STATS_HISTORY_CSV = "_llm_stats_history.csv"  # loadgate: same columns as _stats_history.csv
LLM_SUMMARY_JSON = "_llm_summary.json"  # loadgate: LLM scalars (tokens/s, goodput, jobs, ...)
LOADGATE_JSON = "_loadgate.json"  # loadgate: run metadata (versions, host, warm-up, window, ...)
CAPACITY_JSON = "_capacity.json"  # capacity search: steps and the rate found
CAPACITY_CSV = "_capacity.csv"
CAPACITY_PNG = "_capacity.png"

# -- LLM metric types (the "Type" column of _llm_stats.csv) and their units --------------------------
TTFT, TTFB, ITL, TPOT, E2E, TOKENS_PER_S = "TTFT", "TTFB", "ITL", "TPOT", "E2E", "TOKENS/S"
METRIC_TYPES = (TTFT, TTFB, ITL, TPOT, E2E, TOKENS_PER_S)
UNITS = {TTFT: "ms", TTFB: "ms", ITL: "ms", TPOT: "ms", E2E: "ms", TOKENS_PER_S: "tokens/s"}
TOKEN_BASED = (ITL, TPOT, TOKENS_PER_S)  # figures whose value depends on how tokens were counted

# -- LLM endpoint row names ---------------------------------------------------------------------------
NAME_STREAM = "/v1/chat/completions [stream]"
NAME_NON_STREAM = "/v1/chat/completions [non-stream]"
NAME_ASYNC = "/v1/chat/completions/async"
NAME_BATCH = "/v1/batches"

# -- the gate's LLM pseudo-row ------------------------------------------------------------------------
LLM_ROW = "LLM"  # threshold rows named "LLM" read the scalars of PREFIX_llm_summary.json


def path(prefix: str, suffix: str) -> str:
    """The file of a run: path("results/loadgate", STATS_CSV) -> "results/loadgate_stats.csv"."""
    return f"{prefix}{suffix}"
