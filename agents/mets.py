"""Mixed-effect Thompson sampling (Aouali, Kveton, Katariya. Mixed-Effect Thompson Sampling. 2023).

meTS is HierTS on the mixed-effect hierarchy: units are actions, psi stacks the ``L_e`` effects and
``A_i = b_i^T (x) I_d`` (poster, "Closed-form posteriors: linear case"). The effect posterior is
HierTS eq. (5) with these ``A_i``; action posteriors are eq. (6) with prior mean ``sum_l b_il psi_l``.

* :class:`MeTS` — Alg. 1: sample the effects psi_t ~ Q_t, then every action's theta_i | psi_t, and
  play the argmax of ``X_{t,i}^T theta_i``.
* :class:`MeTSFactored` (meTS-Fa) — the effect posterior factored across effects. The poster gives
  no formula, so we use the mean-field Gaussian factorisation, the standard choice: effect ``l`` is
  drawn from ``N(mu_bar_l, (Lambda_ll)^{-1})`` where ``mu_bar`` is the exact joint mean and
  ``Lambda_ll`` the ``l``-th diagonal block of the joint precision (the fixed point of mean-field
  variational inference for a Gaussian). Sampling costs ``L_e`` factorisations of ``d x d`` blocks
  instead of one of ``L_e d x L_e d``; it ignores cross-effect correlation (under-dispersed).

The baselines of the poster's Fig. 1 are :class:`hbgym.agents.hier_ts.HierTS` (single shared effect),
:class:`hbgym.agents.hier_ts.LinTS` and :class:`hbgym.agents.hier_ts.LinUCB` on the same env.
"""

from __future__ import annotations

from typing import Any

import torch
from hbgym.agents.gaussian_policy import GaussianPolicy
from hbgym.agents.posteriors.linalg import robust_cholesky, sample_precision_normal

from hbgym.models import MixedEffectModel

__all__ = ["MeTS", "MeTSFactored"]


def _require_mixed_effect(model: Any, name: str) -> None:
    if not isinstance(model, MixedEffectModel):
        raise ValueError(f"{name} needs a mixed-effect env (MixedEffect-v0...), got {type(model).__name__}")


class MeTS(GaussianPolicy):
    """Mixed-effect Thompson sampling (Alg. 1 of the meTS paper), linear-Gaussian model."""

    name = "meTS"

    def __init__(self, model: Any, **kwargs: Any) -> None:
        _require_mixed_effect(model, type(self).__name__)
        super().__init__(model, **kwargs)

    def _sample_effects(self) -> torch.Tensor:
        """psi_t ~ Q_t ``(B, L_e d)``."""
        return self.posterior.sample_hyper(self.streams)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self._thompson(ids, features, self._sample_effects())


class MeTSFactored(MeTS):
    """meTS-Fa: effects drawn independently from their mean-field factors (see module docstring)."""

    name = "meTS-Fa"

    def _sample_effects(self) -> torch.Tensor:
        mean, _ = self.posterior.hyper_factor()
        precision = self.posterior.hyper_precision()
        d, num_effects = self.model.dim, self.model.num_effects
        blocks = torch.stack(
            [precision[:, l * d : (l + 1) * d, l * d : (l + 1) * d] for l in range(num_effects)], dim=1
        )  # (B, L_e, d, d)
        draws = sample_precision_normal(mean.reshape(-1, num_effects, d), robust_cholesky(blocks),
                                        self.streams)
        return draws.reshape(self.num_envs, -1)
