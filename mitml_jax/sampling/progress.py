"""A tqdm progress bar updated from the host between sampler blocks (never inside jit)."""

from __future__ import annotations

__all__ = ["ProgressBar"]


class ProgressBar:
    """Thin wrapper around ``tqdm``; a no-op when disabled or when tqdm is not installed."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "Gibbs sampler"):
        self._bar = None
        if enabled and total > 0:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency, but stay silent without it
                return
            self._bar = tqdm(total=total, desc=desc, unit="it", leave=False)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
