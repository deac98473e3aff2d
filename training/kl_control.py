"""KL coefficient controllers (pure Python): fixed, or adaptive after Ziegler et al. 2019."""

from __future__ import annotations

from dataclasses import dataclass

CLIP = 0.2


@dataclass
class FixedKLController:
    """A constant coefficient."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float:
        """Nothing to adapt; returns the coefficient."""
        del current_kl, n_steps
        return self.value


@dataclass
class AdaptiveKLController:
    """Proportional: e = clip(KL/target - 1, -0.2, 0.2); beta <- beta * (1 + e * n / horizon)."""

    value: float
    target: float
    horizon: int

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move beta towards holding KL at `target` after `n_steps` more episodes; returns beta."""
        error = min(max(current_kl / self.target - 1.0, -CLIP), CLIP)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


KLController = FixedKLController | AdaptiveKLController


def make_controller(coef: float, *, adaptive: bool, target: float, horizon: int) -> KLController:
    """The controller a config asks for."""
    if adaptive:
        return AdaptiveKLController(value=coef, target=target, horizon=horizon)
    return FixedKLController(value=coef)
