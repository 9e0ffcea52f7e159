"""Full-ranking recommendation metrics and search evaluation."""

from .metrics import hit_metrics
from .ranking import DEFAULT_KS, METRICS, RankingEvaluator

__all__ = ["DEFAULT_KS", "METRICS", "RankingEvaluator", "hit_metrics"]
