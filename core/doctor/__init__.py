"""The run doctor: rules over a run's recent metrics that say, as it happens, when it goes
wrong (KL running away, entropy collapsing, no learning signal, truncation, ...)."""

from core.doctor.doctor import Doctor, diagnose
from core.doctor.findings import History, RunFacts, Verdict, one_line
from core.doctor.rules import RULES

__all__ = ["RULES", "Doctor", "History", "RunFacts", "Verdict", "diagnose", "one_line"]
