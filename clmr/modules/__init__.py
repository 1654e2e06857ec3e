"""Lightning modules: one per way of training."""

from __future__ import annotations

from clmr.modules.contrastive_learning import ContrastiveLearning
from clmr.modules.supervised_learning import SupervisedLearning

__all__ = ["ContrastiveLearning", "SupervisedLearning"]
