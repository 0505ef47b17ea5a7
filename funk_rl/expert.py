"""The DAPG authors' hammer policy as funk_rl's expert: its mean action from the 46-d state, in numpy.

The policy is the state expert published with DAPG (Rajeswaran et al., RSS 2018),
converted from the authors' mjrl pickle by :mod:`funk_rl.convert_expert` into
``experts/dapg-hammer-v0.npz`` beside this module (attribution, licence and its
measured success: ``funk_rl/experts/README.md``). Its action depends only on the
current state, so it can label any state a learner visits (DAgger).

This module imports no torch: the expert runs inside the environment worker
processes (:class:`funk_rl.envs.ExpertLabels`).

Measure the expert on funk_rl's state environment by DAPG's success rule:

    python -m funk_rl.evaluate --expert funk_rl/experts/dapg-hammer-v0.npz --episodes 50 --action-noise 0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_EXPERT = Path(__file__).with_name("experts") / "dapg-hammer-v0.npz"
#: The network: 46-d state -> 32 -> 32 -> 26 actions, tanh between layers.
LAYER_SIZES = (46, 32, 32, 26)
#: The arrays of an expert file and their shapes (layer i computes ``x @ w_i.T + b_i``).
SHAPES: dict[str, tuple[int, ...]] = {
    **{
        key: shape
        for i, (n_in, n_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]))
        for key, shape in ((f"w{i}", (n_out, n_in)), (f"b{i}", (n_out,)))
    },
    "in_shift": (LAYER_SIZES[0],),
    "in_scale": (LAYER_SIZES[0],),
    "out_shift": (LAYER_SIZES[-1],),
    "out_scale": (LAYER_SIZES[-1],),
    "log_std": (LAYER_SIZES[-1],),
}
#: mjrl's FCNetwork adds this to ``in_scale`` before dividing.
SCALE_EPS = 1e-8


# eq=False: the generated __eq__/__hash__ would compare and hash numpy arrays, which raise.
@dataclass(frozen=True, eq=False)
class DapgExpert:
    """The DAPG hammer policy's mean: ``net((obs - in_shift) / (in_scale + 1e-8)) * out_scale + out_shift``.

    Make it with :meth:`load`; the arrays are float64 and read-only.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    in_shift: np.ndarray
    in_scale: np.ndarray
    out_shift: np.ndarray
    out_scale: np.ndarray
    gaussian_log_std: np.ndarray
    source_sha256: str

    @classmethod
    def load(cls, path: str | Path = DEFAULT_EXPERT) -> DapgExpert:
        """Read an expert file written by :mod:`funk_rl.convert_expert` (ValueError naming the file and array)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: expert file not found (write one with python -m funk_rl.convert_expert)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                found = {key: npz[key] for key in npz.files}
        except Exception as exc:  # np.load raises many kinds for a foreign or truncated file
            raise ValueError(
                f"{path}: expected an .npz expert file, could not read it ({type(exc).__name__}: {exc})"
            ) from exc
        arrays = {}
        for key, shape in SHAPES.items():
            if key not in found:
                raise ValueError(f"{path}: missing array {key!r} of shape {shape} (arrays found: {sorted(found)})")
            array = found[key]
            if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
                raise ValueError(
                    f"{path}: array {key!r}: expected float of shape {shape}, "
                    f"found {array.dtype} of shape {array.shape}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{path}: array {key!r}: expected finite values, found NaN or inf")
            array = array.astype(np.float64)
            array.setflags(write=False)  # shared by every act call (and every copy of a frozen dataclass)
            arrays[key] = array
        sha = found.get("source_sha256")
        if sha is None or sha.shape != () or sha.dtype.kind != "U":
            raise ValueError(
                f"{path}: array 'source_sha256': expected a string, "
                f"found {'nothing' if sha is None else f'{sha.dtype} of shape {sha.shape}'}"
            )
        layers = range(len(LAYER_SIZES) - 1)
        return cls(
            weights=tuple(arrays[f"w{i}"] for i in layers),
            biases=tuple(arrays[f"b{i}"] for i in layers),
            in_shift=arrays["in_shift"],
            in_scale=arrays["in_scale"],
            out_shift=arrays["out_shift"],
            out_scale=arrays["out_scale"],
            gaussian_log_std=arrays["log_std"],
            source_sha256=str(sha),
        )

    @property
    def log_std(self) -> np.ndarray:
        """The Gaussian's log standard deviation (26,); :meth:`act` returns the mean and ignores it."""
        return self.gaussian_log_std

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Mean action clipped to [-1, 1], float32: (46,) -> (26,) or (N, 46) -> (N, 26)."""
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim not in (1, 2) or obs.shape[-1] != LAYER_SIZES[0]:
            raise ValueError(
                f"DapgExpert.act: expected observations of shape ({LAYER_SIZES[0]},) or "
                f"(N, {LAYER_SIZES[0]}), found {obs.shape}"
            )
        out = (obs - self.in_shift) / (self.in_scale + SCALE_EPS)
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            out = out @ weight.T + bias
            if i < len(self.weights) - 1:
                out = np.tanh(out)
        return np.clip(out * self.out_scale + self.out_shift, -1.0, 1.0).astype(np.float32)
