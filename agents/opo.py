"""HierOPO, OracleOPO and FlatOPO: pessimistic off-policy optimisation from logged multi-task
bandit feedback (Hong, Kveton, Katariya, Zaheer, Ghavamzadeh. Multi-task Off-policy Learning from
Bandit Feedback. ICML 2023).

Model (Sec. 3.2): ``mu* ~ N(mu_q, Sigma_q)``, ``theta_s | mu* ~ N(mu*, Sigma_0)``,
``Y ~ N(phi(x, a)^T theta_s, sigma^2)``. Every learner turns a logged dataset into a Gaussian
posterior ``N(theta_hat_s, Sigma_hat_s)`` per task and acts on the lower confidence bound (Alg. 1)

    L_s(x, a) = phi(x, a)^T theta_hat_s - alpha * sqrt(phi(x, a)^T Sigma_hat_s phi(x, a)),
    pi_hat_s(x) = argmax_a L_s(x, a);

they differ only in the posterior, all of which come from the one two-level Gaussian posterior
(:class:`agents.posteriors.HierarchicalGaussian`):

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

A fitted learner **is** the per-task policy: an :class:`~agents.base.TorchAgent` whose ``act`` maps
observations (``"task"`` ``(L,)``, ``"features"`` ``(L, K, d)``) to LCB-greedy actions and whose
``update`` does nothing, so the online runner can play it (on the instance it was fitted on).
Before ``fit`` it acts on the prior (no data). ``reset`` keeps the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from agents.base import TorchAgent
from agents.posteriors import HierarchicalGaussian
from hbgym.models import take_slot
from hbgym.offline import LoggedDataset, instance_fingerprint

__all__ = ["OfflinePolicy", "HierOPO", "OracleOPO", "FlatOPO"]

_MODEL_FIELDS = ("dim", "hyper_mean", "hyper_cov", "task_cov", "noise_std")


class OfflinePolicy(TorchAgent):
    """Base of the offline learners: per-task Gaussian posterior -> LCB-greedy policy (Alg. 1).

    Args:
        model: the env's public model; must be a hierarchical Gaussian model (``dim``,
            ``hyper_mean`` ``(d,)``, ``hyper_cov`` and ``task_cov`` ``(d, d)``, ``noise_std``), as
            published by HierGaussian-v0 and the real-data envs built on it.
        alpha: width of the confidence interval (eq. (2)); the paper uses 0.1 (Sec. 7). 0 gives
            the greedy posterior-mean policy.
        num_envs, device, dtype, seed: as :class:`~agents.base.TorchAgent`; ``fit`` takes one
            dataset per replicate.

    Attributes (after ``fit``; before it, the prior):
        posterior_mean: ``(B, m, d)`` theta_hat_s.
        posterior_cov: ``(B, m, d, d)`` Sigma_hat_s.
    """

    #: offline learners: built with ``from_env``, then ``fit(dataset)``; ``update`` is a no-op
    offline: ClassVar[bool] = True

    def __init__(self, model: Any, alpha: float = 0.1, **kwargs: Any) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not (
            np.isfinite(alpha) and alpha >= 0
        ):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        super().__init__(model, **kwargs)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        missing = [f for f in _MODEL_FIELDS if not hasattr(self.model, f)]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs a hierarchical Gaussian model (HierGaussian-v0 and the "
                f"envs built on it); {type(self.model).__name__} has no {', '.join(missing)}"
            )
        like = {"device": self.device, "dtype": self.dtype}
        model = self.model
        self._dim = int(model.dim)
        self._hyper_mean = torch.as_tensor(np.asarray(model.hyper_mean), **like)
        self._hyper_cov = torch.as_tensor(np.asarray(model.hyper_cov), **like)
        self._task_cov = torch.as_tensor(np.asarray(model.task_cov), **like)
        self._noise_var = float(model.noise_std) ** 2
        self._fitted = False
        self._mean: torch.Tensor | None = None
        self._cov: torch.Tensor | None = None
        self.num_samples = np.zeros(self.num_envs, dtype=np.int64)

    def _reset_state(self) -> None:
        if not self._fitted:  # the prior policy is recomputed lazily (an oracle re-reads mu*)
            self._mean = self._cov = None

    # ------------------------------------------------------------------ learning

    def _posterior(self) -> HierarchicalGaussian:
        """An empty posterior of this learner (subclasses choose prior and hierarchy)."""
        raise NotImplementedError

    def _moments(
        self, posterior: HierarchicalGaussian, datasets: Sequence[LoggedDataset] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-task posterior mean ``(B, m, d)`` and covariance ``(B, m, d, d)``."""
        raise NotImplementedError

    def _task_ids(self) -> torch.Tensor:
        return torch.arange(self.model.num_tasks, device=self.device).expand(self.num_envs, -1)

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
        B, m, d = self.num_envs, self.model.num_tasks, self._dim
        gram = torch.zeros(B, m, d, d, **like)
        moment = torch.zeros(B, m, d, **like)
        for b, ds in enumerate(datasets):  # G_s, B_s of eq. (6) for every task at once
            ids = torch.as_tensor(ds.tasks, device=self.device)
            phi = torch.as_tensor(ds.logged_features, **like)  # phi(X_t, A_t), (n, d)
            scaled = phi / self._noise_var
            y = torch.as_tensor(ds.rewards, **like)
            gram[b].index_put_((ids,), scaled[:, :, None] * phi[:, None, :], accumulate=True)
            moment[b].index_put_((ids,), scaled * y[:, None], accumulate=True)
        posterior = self._posterior()
        posterior.set_statistics(self._task_ids(), gram, moment)
        self._mean, self._cov = self._moments(posterior, datasets)
        self.num_samples = np.array([len(ds) for ds in datasets], dtype=np.int64)
        self._fitted = True
        return self

    def _ensure_moments(self) -> None:
        if self._mean is None:
            self._mean, self._cov = self._moments(self._posterior(), None)

    @property
    def posterior_mean(self) -> torch.Tensor:
        """``(B, m, d)`` per-task posterior mean theta_hat_s."""
        self._ensure_moments()
        return self._mean

    @property
    def posterior_cov(self) -> torch.Tensor:
        """``(B, m, d, d)`` per-task posterior covariance Sigma_hat_s."""
        self._ensure_moments()
        return self._cov

    # ------------------------------------------------------------------ acting

    def lower_confidence_bounds(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``L_s(x, a)`` ``(B, L, K)`` for observation tensors (``"task"`` ``(B, L)``, ``"features"``
        ``(B, L, K, d)``): posterior mean reward minus alpha posterior sd (eq. (2)-(3))."""
        if "features" not in obs:
            raise ValueError(f"{type(self).__name__} needs per-action 'features' in the observation")
        feats, tasks = obs["features"], obs["task"]
        if feats.ndim != 4 or feats.shape[-1] != self._dim or feats.shape[:2] != tasks.shape:
            raise ValueError(
                f"obs['features'] must have shape (B, L, K, d={self._dim}) matching obs['task'] "
                f"{tuple(tasks.shape)}, got {tuple(feats.shape)}"
            )
        if tasks.numel() and (int(tasks.min()) < 0 or int(tasks.max()) >= self.model.num_tasks):
            raise ValueError(f"obs['task'] must be in [0, {self.model.num_tasks - 1}], got {tasks.tolist()}")
        self._ensure_moments()
        rows = torch.arange(self.num_envs, device=self.device)[:, None]
        mean, cov = self._mean[rows, tasks], self._cov[rows, tasks]  # (B, L, d), (B, L, d, d)
        reward = torch.einsum("blkd,bld->blk", feats, mean)
        var = torch.einsum("blkd,blde,blke->blk", feats, cov, feats).clamp_min(0.0)
        return reward - self.alpha * var.sqrt()

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.lower_confidence_bounds(obs).argmax(dim=-1)

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        """No-op: a policy learned offline does not learn online."""


class HierOPO(OfflinePolicy):
    """Hierarchical off-policy optimisation (Alg. 1 with the Gaussian LCBs of eq. (8))."""

    name = "HierOPO"

    def _posterior(self) -> HierarchicalGaussian:
        return HierarchicalGaussian(
            self.num_envs, self.model.num_tasks, self._hyper_mean, self._hyper_cov, self._task_cov,
            learn_hyper=True, device=self.device, dtype=self.dtype,
        )

    def _moments(self, posterior, datasets):
        return posterior.marginal_posterior(self._task_ids())


class OracleOPO(OfflinePolicy):
    """OracleOPO (Sec. 3.3): the task posterior given the true hyper-parameter mu*.

    Reads ``env.unwrapped.instance.hyper_param`` (build it with ``from_env`` on the env that holds
    the dataset's instance, e.g. the one ``collect`` reset, or ``dataset.make_env()``); ``fit``
    checks the instance fingerprint recorded in each dataset.
    """

    name = "OracleOPO"
    oracle = True

    def _posterior(self) -> HierarchicalGaussian:
        return HierarchicalGaussian(
            self.num_envs, self.model.num_tasks, self._hyper_mean, self._hyper_cov, self._task_cov,
            learn_hyper=False, device=self.device, dtype=self.dtype,
        )

    def _true_hyper(self, datasets: Sequence[LoggedDataset] | None) -> torch.Tensor:
        """mu* ``(B, d)`` from the env's instance (a vector env's instance holds one per replicate)."""
        instance = self._read_instance()
        hyper = np.asarray(instance.hyper_param, dtype=np.float64)
        if hyper.ndim == 2:
            if hyper.shape[0] != self.num_envs:
                raise ValueError(
                    f"the env's instance holds {hyper.shape[0]} replicates, the agent {self.num_envs}"
                )
            slots = [take_slot(instance, b) for b in range(self.num_envs)]
        else:
            hyper = np.broadcast_to(hyper, (self.num_envs, self._dim))
            slots = [instance] * self.num_envs
        for b, ds in enumerate(datasets or []):
            want = ds.metadata.get("instance_fingerprint")
            if want is not None and instance_fingerprint(slots[b]) != want:
                raise ValueError(
                    f"OracleOPO reads mu* from an env whose instance is not dataset {b}'s (fingerprint "
                    "mismatch): build it from the env collect() reset, or from dataset.make_env()"
                )
        return torch.as_tensor(np.array(hyper), device=self.device, dtype=self.dtype)

    def _moments(self, posterior, datasets):
        return posterior.conditional(self._task_ids(), self._true_hyper(datasets))


class FlatOPO(OfflinePolicy):
    """FlatOPO (Sec. 3.3): tasks learned independently under the marginal prior
    ``N(mu_q, Sigma_q + Sigma_0)`` (no hierarchy)."""

    name = "FlatOPO"

    def _posterior(self) -> HierarchicalGaussian:
        return HierarchicalGaussian(
            self.num_envs, self.model.num_tasks, self._hyper_mean, self._hyper_cov,
            self._hyper_cov + self._task_cov, learn_hyper=False, device=self.device, dtype=self.dtype,
        )

    def _moments(self, posterior, datasets):
        hyper = self._hyper_mean.expand(self.num_envs, self._dim)
        return posterior.conditional(self._task_ids(), hyper)
