"""The math behind hbgym's agents: one hierarchical Gaussian posterior (and its K-armed fast path),
Laplace GLM posteriors, empirical-Bayes prior estimation and GP log-density SMC. Policies in
``agents/`` are thin layers over these."""

from hbgym.agents.posteriors.gaussian import DiagonalHierarchicalGaussian, HierarchicalGaussian
from hbgym.agents.posteriors.linalg import NotPSDError, robust_cholesky

__all__ = ["DiagonalHierarchicalGaussian", "HierarchicalGaussian", "NotPSDError", "robust_cholesky"]

from hbgym.agents.posteriors.empirical_bayes import EBPrior, UnitStatistics, estimate_prior  # noqa: E402

__all__ += ["EBPrior", "UnitStatistics", "estimate_prior"]

from hbgym.agents.posteriors.mixture import mixture_posterior, sample_mixture  # noqa: E402

__all__ += ["mixture_posterior", "sample_mixture"]

from hbgym.agents.posteriors.gp_density import KroneckerKL  # noqa: E402
from hbgym.agents.posteriors.smc import GPDensitySMC  # noqa: E402

__all__ += ["GPDensitySMC", "KroneckerKL"]
