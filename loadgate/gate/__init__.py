"""The SLA gate: threshold language, threshold file, Locust CSV loading, evaluation and reports."""

from loadgate.gate.cli import main
from loadgate.gate.config import SlaConfig, load_config, parse_config
from loadgate.gate.data import RunData, load_run
from loadgate.gate.errors import EXIT_BAD_INPUT, EXIT_BREACH, EXIT_PASS, GateInputError
from loadgate.gate.evaluate import Evaluation, Verdict, evaluate

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BREACH",
    "EXIT_PASS",
    "Evaluation",
    "GateInputError",
    "RunData",
    "SlaConfig",
    "Verdict",
    "evaluate",
    "load_config",
    "load_run",
    "main",
    "parse_config",
]
