"""The math behind hbgym's agents: one hierarchical Gaussian posterior (and its K-armed fast path),
Laplace GLM posteriors, empirical-Bayes prior estimation and GP log-density SMC. Policies in
``agents/`` are thin layers over these."""

from agents.posteriors.gaussian import DiagonalHierarchicalGaussian, HierarchicalGaussian
from agents.posteriors.linalg import NotPSDError, robust_cholesky

__all__ = ["DiagonalHierarchicalGaussian", "HierarchicalGaussian", "NotPSDError", "robust_cholesky"]

from agents.posteriors.empirical_bayes import EBPrior, UnitStatistics, estimate_prior  # noqa: E402

__all__ += ["EBPrior", "UnitStatistics", "estimate_prior"]

from agents.posteriors.mixture import mixture_posterior, sample_mixture  # noqa: E402

__all__ += ["mixture_posterior", "sample_mixture"]
