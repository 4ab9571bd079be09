"""Mixed-effect Thompson sampling (Aouali, Kveton, Katariya. Mixed-Effect Thompson Sampling. 2023).

meTS is HierTS on the mixed-effect hierarchy: units are actions, psi stacks the ``L_e`` effects and
``A_i = b_i^T (x) I_d`` (poster, "Closed-form posteriors: linear case"). The effect posterior is
HierTS eq. (5) with these ``A_i``; action posteriors are eq. (6) with prior mean ``sum_l b_il psi_l``.

* :class:`MeTS` — Alg. 1: sample the effects psi_t ~ Q_t, then every action's theta_i | psi_t, and
  play the argmax of ``X_{t,i}^T theta_i``.
* :class:`MeTSFactored` (meTS-Fa) - the effect posterior factored across effects, as the meTS
  authors built it (their experiment code; the poster names it "meTS-Lin-Fa" in Fig. 1): effect ``l``
  is drawn from its own block ``N(Lambda_l^{-1} eta_l, Lambda_l^{-1})`` with precision
  ``Lambda_l = S_l^{-1} + sum_i b_il^2 P_i`` and natural mean
  ``eta_l = S_l^{-1} mu_l + sum_i b_il P_i G_i^{-1} B_i``, ``P_i = (S_0 + G_i^{-1})^{-1}`` - the
  poster's effect posterior (``bar Sigma_t``, ``bar mu_t``) with the cross-effect terms
  ``b_il b_ik P_i`` (``l != k``) dropped. We use the exact forms ``P_i = G_i (I + S_0 G_i)^{-1}`` and
  ``P_i G_i^{-1} B_i = (I + G_i S_0)^{-1} B_i`` (no ``G_i^{-1}``); the authors add ``1e-3 I`` to
  each ``G_i`` before inverting, an approximation we do not copy. ``mean="joint"`` keeps the
  factored covariance but centres each block at the exact joint posterior mean (the mean-field
  fixed point; our earlier meTS-Fa). Both cost ``L_e`` factorisations of ``d x d`` blocks.

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
    """meTS-Fa: each effect drawn from its own posterior block (see the module docstring).

    Args:
        model: the env's public mixed-effect model.
        mean: ``"paper"`` (default; the authors' block mean ``Lambda_l^{-1} eta_l``) or ``"joint"``
            (the exact joint posterior mean).
        **kwargs: see :class:`GaussianPolicy`.
    """

    name = "meTS-Fa"

    def __init__(self, model: Any, *, mean: str = "paper", **kwargs: Any) -> None:
        if mean not in ("paper", "joint"):
            raise ValueError(f'mean={mean!r} is unknown; allowed: "paper", "joint"')
        self.mean = mean
        super().__init__(model, **kwargs)

    def effect_blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-effect means ``(B, L_e, d)`` and Cholesky factors of the block precisions
        ``Lambda_l`` ``(B, L_e, d, d)``."""
        d, num_effects = self.model.dim, self.model.num_effects
        precision = self.posterior.hyper_precision()
        blocks = torch.stack(
            [precision[:, l * d : (l + 1) * d, l * d : (l + 1) * d] for l in range(num_effects)], dim=1
        )
        factor = robust_cholesky(blocks)
        if self.mean == "paper":
            eta = self.posterior.hyper_eta().reshape(-1, num_effects, d)
            mean = torch.cholesky_solve(eta[..., None], factor)[..., 0]
        else:
            mean = self.posterior.hyper_factor()[0].reshape(-1, num_effects, d)
        return mean, factor

    def _sample_effects(self) -> torch.Tensor:
        mean, factor = self.effect_blocks()
        return sample_precision_normal(mean, factor, self.streams).reshape(self.num_envs, -1)
