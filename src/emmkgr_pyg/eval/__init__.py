"""Full-ranking recommendation metrics and search evaluation."""

from .ranking import DEFAULT_KS, METRICS, RankingEvaluator

__all__ = ["DEFAULT_KS", "METRICS", "RankingEvaluator"]
