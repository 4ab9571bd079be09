"""HierOPO, OracleOPO and FlatOPO: pessimistic off-policy optimisation from logged multi-task
bandit feedback (Hong, Kveton, Katariya, Zaheer, Ghavamzadeh. Multi-task Off-policy Learning from
Bandit Feedback. ICML 2023).

Model (Sec. 3.2): ``mu* ~ N(mu_q, Sigma_q)``, ``theta_s | mu* ~ N(mu*, Sigma_0)``,
``Y ~ N(phi(x, a)^T theta_s, sigma^2)``. Every learner turns a logged dataset into a Gaussian
posterior ``N(theta_hat_s, Sigma_hat_s)`` per task and acts on the lower confidence bound (Alg. 1)

    L_s(x, a) = phi(x, a)^T theta_hat_s - alpha * sqrt(phi(x, a)^T Sigma_hat_s phi(x, a)),
    pi_hat_s(x) = argmax_a L_s(x, a);

they differ only in the posterior, all three being the one two-level Gaussian posterior of
:mod:`hbgym.agents.gaussian_policy` (the prior/posterior layer under HierTS):

* **HierOPO**, eq. (8): the marginal posterior of theta_s given all data, integrating the unknown
  mu* out: ``theta_hat_s = S~_s (Sigma_0^{-1} mu_bar + B_s)``,
  ``Sigma_hat_s = S~_s + S~_s Sigma_0^{-1} S_bar Sigma_0^{-1} S~_s`` with the hyper-posterior
  ``N(mu_bar, S_bar)`` of eq. (7) and ``S~_s = (Sigma_0^{-1} + G_s)^{-1}`` of eq. (6).
* **OracleOPO** (Sec. 3.3): knows mu*; ``theta_hat_s = S~_s (Sigma_0^{-1} mu* + B_s)``,
  ``Sigma_hat_s = S~_s``. Reads the truth (``oracle = True``).
* **FlatOPO** (Sec. 3.3): no hierarchy; each task alone with the marginal prior
  ``N(mu_q, Sigma_q + Sigma_0)``.

``G_s = sigma^{-2} sum_{t: S_t = s} phi_t phi_t^T`` and ``B_s = sigma^{-2} sum phi_t Y_t`` with
``phi_t = phi(X_t, A_t)`` the logged action's features; the logging policy need not be known.

A fitted learner **is** the per-task policy: a :class:`~hbgym.agents.base.TorchAgent` whose ``act`` maps
observations (``"task"`` ``(L,)``, ``"features"`` ``(L, K, d)``) to LCB-greedy actions and whose
``update`` does nothing, so the online runner can play it (on the instance it was fitted on).
Before ``fit`` it acts on the prior (no data); ``reset`` keeps the fit.

Like the online Gaussian agents, the learners run on every model with a registered Gaussian
hierarchy: HierGaussian-v0 / HierGaussianMAB-v0 (units = tasks, as in the paper) and
MixedEffect-v0 (units = actions with the mixed-effect hierarchy: an offline meTS with LCBs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from hbgym.agents.gaussian_policy import GaussianPolicy
from hbgym.agents.hierarchies import GaussianHierarchy

from hbgym.models import take_slot
from hbgym.offline.dataset import LoggedDataset, instance_fingerprint

__all__ = ["OfflinePolicy", "HierOPO", "OracleOPO", "FlatOPO"]


class OfflinePolicy(GaussianPolicy):
    """Base of the offline learners: Gaussian posterior from logged data -> LCB-greedy policy.

    Args:
        model: the env's public model (any model with a registered Gaussian hierarchy).
        alpha: width of the confidence interval (eq. (2)); the paper uses 0.1 (Sec. 7). 0 gives
            the greedy posterior-mean policy.
        hierarchy, num_envs, device, dtype, seed: as :class:`~hbgym.agents.gaussian_policy.GaussianPolicy`;
            ``fit`` takes one dataset per replicate.

    Attributes (after ``fit``; before it, the prior):
        posterior_mean: ``(B, U, d)`` theta_hat of every unit (the tasks of HierGaussian models).
        posterior_cov: ``(B, U, d, d)`` Sigma_hat of every unit.
        num_samples: ``(B,)`` logged samples fitted per replicate.
    """

    #: offline learners: built with ``from_env``, then ``fit(dataset)``; ``update`` is a no-op
    offline: ClassVar[bool] = True

    def __init__(self, model: Any, *, alpha: float = 0.1, **kwargs: Any) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not (
            np.isfinite(alpha) and alpha >= 0
        ):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self._fitted = False
        super().__init__(model, **kwargs)

    def _reset_state(self) -> None:
        """A fitted policy is fixed (a new episode forgets nothing); before ``fit`` it is the prior."""
        if self._fitted:
            return
        super()._reset_state()
        self.num_samples = np.zeros(self.num_envs, dtype=np.int64)
        self._hyper: torch.Tensor | None = None  # psi the posterior is conditioned on (lazy)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        """No-op: a policy learned offline does not learn online."""

    # ------------------------------------------------------------------ learning

    def _condition_on(self, datasets: Sequence[LoggedDataset] | None) -> torch.Tensor | None:
        """psi ``(B, D)`` to condition the unit posterior on, or None for the marginal (eq. (8))."""
        return None

    def fit(self, data: LoggedDataset | Sequence[LoggedDataset]) -> OfflinePolicy:
        """Learn the per-task policies from logged data (one dataset per replicate); returns self.

        Args:
            data: a :class:`~hbgym.offline.LoggedDataset` (``num_envs`` 1) or ``B`` of them. Each
                must match the model (tasks, actions, feature dim) and have ``"features"``.
        """
        datasets = [data] if isinstance(data, LoggedDataset) else list(data)
        if len(datasets) != self.num_envs or not all(isinstance(d, LoggedDataset) for d in datasets):
            raise ValueError(
                f"fit needs {self.num_envs} LoggedDataset(s) (one per replicate, num_envs="
                f"{self.num_envs}), got {len(datasets)} object(s)"
            )
        for d in datasets:
            d.check_compatible(self.model)
            if d.features is None:
                raise ValueError(f"{type(self).__name__} needs per-action 'features' in the dataset")
        like = {"device": self.device, "dtype": self.dtype}
        B, n = self.num_envs, max(len(d) for d in datasets)
        units = torch.zeros(B, n, dtype=torch.long, device=self.device)
        phi = torch.zeros(B, n, self.posterior.unit_dim, **like)
        rewards = torch.zeros(B, n, **like)
        mask = torch.zeros(B, n, dtype=torch.bool, device=self.device)
        for b, ds in enumerate(datasets):  # (unit, phi(X_t, A_t), Y_t) of every logged sample
            obs = {"task": torch.as_tensor(ds.tasks, device=self.device)[None],
                   "features": torch.as_tensor(ds.features, **like)[None]}
            ids = self.layout.unit_ids(obs)[0]  # (n_b, K'): tasks (K' = 1) or actions
            action = torch.as_tensor(ds.actions, device=self.device)
            units[b, : len(ds)] = ids[:, 0] if ids.shape[-1] == 1 else ids.gather(-1, action[:, None])[:, 0]
            phi[b, : len(ds)] = torch.as_tensor(ds.logged_features, **like)
            rewards[b, : len(ds)] = torch.as_tensor(ds.rewards, **like)
            mask[b, : len(ds)] = True
        self._fitted = False
        self._reset_state()  # back to the prior
        if all("mixing" in ds.observations for ds in datasets):  # public per-episode weights (MixedEffect)
            weights = torch.stack([torch.as_tensor(ds.observations["mixing"][0], **like) for ds in datasets])
            self._sync_mixing({"task": units[:, :1], "mixing": weights[:, None]})
        self._condition(units, phi, rewards, mask)
        self._fitted = True
        self.num_samples = np.array([len(ds) for ds in datasets], dtype=np.int64)
        self._hyper = self._condition_on(datasets)
        self._cache = None
        return self

    def _condition(self, units: torch.Tensor, phi: torch.Tensor, rewards: torch.Tensor,
                   mask: torch.Tensor) -> None:
        """Condition the posterior on all logged samples ``(B, n)`` at once (eq. (6)-(7))."""
        noise_var = self._prior().noise_var
        if not hasattr(self.posterior, "set_statistics"):  # K-armed diagonal posterior: elementwise
            self.posterior.update(units, phi, rewards, noise_var=noise_var, mask=mask)
            return
        # dense: G_u = sum phi phi^T / sigma^2 and B_u = sum phi y / sigma^2 per unit, set at once
        B, U, d = units.shape[0], self.posterior.num_units, phi.shape[-1]
        scaled = phi * (mask.to(phi.dtype) / noise_var)[..., None]  # a bool mask / float is float32
        flat = (torch.arange(B, device=self.device)[:, None] * U + units).reshape(-1)
        gram = torch.zeros(B * U, d, d, dtype=phi.dtype, device=self.device)
        moment = torch.zeros(B * U, d, dtype=phi.dtype, device=self.device)
        gram.index_add_(0, flat, (scaled[..., :, None] * phi[..., None, :]).reshape(-1, d, d))
        moment.index_add_(0, flat, (scaled * rewards[..., None]).reshape(-1, d))
        all_units = torch.arange(U, device=self.device).expand(B, U)
        self.posterior.set_statistics(all_units, gram.reshape(B, U, d, d), moment.reshape(B, U, d))

    # ------------------------------------------------------------------ the policy

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if "features" not in obs:
            raise ValueError(f"{type(self).__name__} needs per-action 'features' in the observation")
        feats, tasks = obs["features"], obs["task"]
        d = self.posterior.unit_dim
        if feats.ndim != 4 or feats.shape[-1] != d or feats.shape[:2] != tasks.shape:
            raise ValueError(
                f"obs['features'] must have shape (B, L, K, d={d}) matching obs['task'] "
                f"{tuple(tasks.shape)}, got {tuple(feats.shape)}"
            )
        m = self.model.num_tasks
        if tasks.numel() and (int(tasks.min()) < 0 or int(tasks.max()) >= m):
            raise ValueError(f"obs['task'] must be in [0, {m - 1}], got {tasks.unique().tolist()[:10]}")
        return super()._act(obs)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``L(x, a)`` ``(B, L, K)`` for units ``ids`` ``(B, L, K')`` and ``features``
        ``(B, L, K, d)``: posterior mean reward minus alpha posterior sd (eq. (2)-(3))."""
        mean, cov = self._moments()  # every unit, (B, U, d) and (B, U, d, d)
        rows = torch.arange(self.num_envs, device=self.device)[:, None, None]
        mean, cov = mean[rows, ids], cov[rows, ids]  # (B, L, K', d), (B, L, K', d, d)
        d = features.shape[-1]
        reward = (features * mean).sum(-1)
        var = torch.einsum("blkd,blkde,blke->blk", features, cov.expand(*features.shape, d), features)
        return reward - self.alpha * var.clamp_min(0.0).sqrt()

    def lower_confidence_bounds(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``L_s(x, a)`` ``(B, L, K)`` (``(L, K)`` for an unbatched observation)."""
        batched, tensors = self._to_tensors(obs)
        with torch.no_grad():
            out = self._scores(self.layout.unit_ids(tensors), self.layout.features(tensors)).cpu().numpy()
        return out if batched else out[0]

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``(B, U, d)`` and covariance ``(B, U, d, d)`` of every unit, cached until
        the next ``fit`` (or, before any fit, the next ``reset``)."""
        if self._cache is None:
            if self._hyper is None and not self._fitted:
                self._hyper = self._condition_on(None)  # prior policy: an oracle reads mu* now
            if self._hyper is None:
                self._cache = self.posterior.marginal_posterior(None)  # eq. (8)
            else:
                self._cache = self.posterior.conditional(None, self._hyper)  # eq. (6)
        return self._cache

    @property
    def posterior_mean(self) -> torch.Tensor:
        """``(B, U, d)`` theta_hat of every unit (the tasks of HierGaussian models)."""
        return self._moments()[0]

    @property
    def posterior_cov(self) -> torch.Tensor:
        """``(B, U, d, d)`` Sigma_hat of every unit: eq. (8) for HierOPO, S~ for Oracle/FlatOPO."""
        return self._moments()[1]


class HierOPO(OfflinePolicy):
    """Hierarchical off-policy optimisation (Alg. 1 with the Gaussian LCBs of eq. (8)): the
    marginal posterior of each task given all logged data, mu* integrated out."""

    name = "HierOPO"


class OracleOPO(OfflinePolicy):
    """OracleOPO (Sec. 3.3): the task posterior given the true hyper-parameter mu*.

    Reads the env's instance (build it with ``from_env`` on the env that holds the dataset's
    instance: the one ``collect`` reset, or ``dataset.make_env()``; a vector env reset with seed s
    holds the instances of datasets collected with seeds s, s+1, ...). ``fit`` checks the instance
    fingerprint recorded in each dataset.
    """

    name = "OracleOPO"
    oracle = True
    learn_hyper = False

    def _condition_on(self, datasets: Sequence[LoggedDataset] | None) -> torch.Tensor:
        instance = self._read_instance()
        batched = hasattr(self._env, "num_envs")  # a vector env: one instance per replicate
        truth = np.asarray(self.hierarchy.truth(instance), dtype=np.float64)
        if batched:
            truth = truth.reshape(self.num_envs, -1)
        else:
            truth = np.broadcast_to(truth.reshape(1, -1), (self.num_envs, truth.size))
        hyper = torch.as_tensor(np.array(truth), device=self.device, dtype=self.dtype)
        for b, ds in enumerate(datasets or []):
            want = ds.metadata.get("instance_fingerprint")
            slot = take_slot(instance, b) if batched else instance
            if want is not None and instance_fingerprint(slot) != want:
                raise ValueError(
                    f"OracleOPO reads mu* from an env whose instance is not dataset {b}'s (fingerprint "
                    "mismatch): build it from the env collect() reset, or from dataset.make_env()"
                )
        return hyper


class FlatOPO(OfflinePolicy):
    """FlatOPO (Sec. 3.3): tasks learned independently under the marginal prior
    ``N(mu_q, Sigma_q + Sigma_0)`` (no hierarchy)."""

    name = "FlatOPO"
    learn_hyper = False

    def _prior(self) -> GaussianHierarchy:
        return self.hierarchy.flattened()

    def _condition_on(self, datasets: Sequence[LoggedDataset] | None) -> torch.Tensor:
        hyper = torch.as_tensor(self._prior().hyper_mean, device=self.device, dtype=self.dtype)
        return hyper.expand(self.num_envs, -1)
