"""Convert the DAPG authors' hammer policy (an mjrl pickle) into funk_rl's expert file, a plain ``.npz``.

The source is ``dapg/policies/hammer-v0.pickle`` of the DAPG authors' repository
aravindr93/hand_dapg at commit 9a1de23, Apache-2.0 (attribution, checksum and
licence: ``funk_rl/experts/README.md`` and ``funk_rl/experts/LICENSE``). It is a
pickled ``mjrl.policies.gaussian_mlp.MLP``: a Gaussian policy whose mean is an
``mjrl.utils.fc_network.FCNetwork`` 46 -> 32 -> 32 -> 26 with tanh between layers,
mean action = ``net((obs - in_shift) / (in_scale + 1e-8)) * out_scale + out_shift``.

Why a restricted unpickler: unpickling calls whatever globals the file names, so an
unrestricted ``pickle.load`` of a downloaded file runs arbitrary code, and this one
also needs mjrl (not installed) and torch/numpy names that no longer exist. Here
``find_class`` resolves only the globals this file names: mjrl's classes and torch's
``ModuleList``/``Linear`` become plain attribute holders (their code never runs),
numpy's array reconstruction maps to numpy's current functions, tensors are rebuilt
by torch's own rebuild functions from storages read with ``torch.load(...,
weights_only=True)``, and ``getattr`` yields only ``torch._C._VariableFunctions.tanh``.
Any other global is refused before it is called.

The output holds float64 arrays ``w0 b0 w1 b1 w2 b2`` (layer i: ``x @ w_i.T + b_i``),
``in_shift in_scale out_shift out_scale`` (the transformations the network's forward
uses) and ``log_std``, plus ``source_sha256`` (the pickle's checksum), read by
:class:`funk_rl.expert.DapgExpert`.

    python -m funk_rl.convert_expert SRC.pickle funk_rl/experts/dapg-hammer-v0.npz

(the exact command that made the shipped file: ``funk_rl/experts/README.md``).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from funk_perception.atomic import save_npz_atomic
from funk_perception.cli import command
from funk_rl.expert import LAYER_SIZES, SHAPES

TRANSFORMS = ("in_shift", "in_scale", "out_shift", "out_scale")


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowed list (nothing of it was called)."""


class Stub:
    """Stands in for a class the pickle names: NEWOBJ makes an empty one, BUILD fills its ``__dict__``.

    None of the original class's code runs; ``origin`` is the global it replaces.
    """

    origin: ClassVar[str] = ""


def _stub(module: str, name: str) -> type[Stub]:
    return type(name, (Stub,), {"origin": f"{module}.{name}", "__module__": __name__})


def _no_backend() -> None:
    """Stands in for torch 0.4's ``_get_thnn_function_backend`` (gone from torch; the network never needs it)."""
    return None


class _VariableFunctions:
    """Stands in for ``torch._C._VariableFunctions``: only its ``tanh`` may be fetched (see :func:`_getattr`)."""


def _getattr(owner: Any, name: str) -> Callable[..., Any]:
    # The pickle stores the network's nonlinearity as getattr(torch._C._VariableFunctions, "tanh");
    # a general getattr would reach any attribute of any object the pickle can build.
    if owner is _VariableFunctions and name == "tanh":
        return torch.tanh
    raise RefusedGlobal(
        f"builtins.getattr is allowed only for torch._C._VariableFunctions.tanh, "
        f"found getattr({getattr(owner, '__name__', type(owner).__name__)}, {name!r})"
    )


def _load_storage(data: bytes) -> Any:
    """Replaces ``torch.storage._load_from_bytes``, which unpickles each storage with ``weights_only=False``."""
    return torch.load(io.BytesIO(data), weights_only=True)


# numpy 2 moved numpy.core to numpy._core; ask numpy for the functions its own pickles name today.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]

ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "getattr"): _getattr,
    ("torch._C", "_VariableFunctions"): _VariableFunctions,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _no_backend,
    **{
        key: _stub(*key)
        for key in [
            ("mjrl.policies.gaussian_mlp", "MLP"),
            ("mjrl.utils.fc_network", "FCNetwork"),
            ("torch.nn.modules.container", "ModuleList"),
            ("torch.nn.modules.linear", "Linear"),
        ]
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`ALLOWED`; any other raises :class:`RefusedGlobal`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused global {module}.{name}: the DAPG hammer policy names only "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED))}"
            ) from None


def read_policy(path: str | Path) -> Stub:
    """Unpickle an mjrl policy file with :class:`RestrictedUnpickler`; its ``model`` and layers are :class:`Stub` s."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DAPG policy pickle not found")
    try:
        with open(path, "rb") as handle:
            policy = RestrictedUnpickler(handle).load()
    except Exception as exc:  # a foreign, truncated or hostile file fails in many ways
        raise ValueError(
            f"{path}: expected the DAPG hammer policy pickle, could not read it ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(policy, Stub) or policy.origin != "mjrl.policies.gaussian_mlp.MLP":
        found = policy.origin if isinstance(policy, Stub) else type(policy).__name__
        raise ValueError(f"{path}: expected a pickled mjrl.policies.gaussian_mlp.MLP, found {found}")
    return policy


def _numpy(value: Any) -> np.ndarray | None:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().astype(np.float64)
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
        return value.astype(np.float64)
    return None


def _describe(array: np.ndarray | None, value: Any) -> str:
    return str(array.shape) if array is not None else type(value).__name__


def expert_arrays(policy: Stub, path: str | Path) -> dict[str, np.ndarray]:
    """:func:`read_policy`'s network as the output file's float64 arrays (checked: 46->32->32->26, tanh)."""
    model = getattr(policy, "model", None)
    layers = getattr(getattr(model, "_modules", {}).get("fc_layers"), "_modules", None)
    found: dict[str, Any] = {}
    for i, layer in enumerate(layers.values() if isinstance(layers, dict) else []):
        params = getattr(layer, "_parameters", {})
        found[f"w{i}"], found[f"b{i}"] = params.get("weight"), params.get("bias")
    # The float32 tensors mjrl's forward uses (set_transformations also keeps float64 copies in a dict).
    found.update({key: getattr(model, key, None) for key in TRANSFORMS})
    # log_std_val: the float64 copy mjrl's get_action samples with (log_std is the trainable tensor).
    found["log_std"] = getattr(policy, "log_std_val", None)
    arrays = {key: _numpy(value) for key, value in found.items()}
    nonlinearity = getattr(model, "nonlinearity", None)
    if (
        not isinstance(layers, dict)
        or set(arrays) != set(SHAPES)
        or nonlinearity is not torch.tanh
        or any(array is None or array.shape != SHAPES[key] for key, array in arrays.items())
    ):
        shapes = ", ".join(
            f"{key} {'missing' if value is None else _describe(arrays[key], value)}" for key, value in found.items()
        )
        layers_found = f"{len(layers)} layers" if isinstance(layers, dict) else "no model._modules['fc_layers']"
        raise ValueError(
            f"{path}: expected the DAPG hammer MLP {'->'.join(map(str, LAYER_SIZES))} (tanh; "
            f"{', '.join(f'{k} {v}' for k, v in SHAPES.items())}), found {layers_found}, "
            f"nonlinearity {getattr(nonlinearity, '__name__', nonlinearity)!r}, {shapes}"
        )
    checked = {key: array for key, array in arrays.items() if array is not None}
    bad = [key for key, array in checked.items() if not np.isfinite(array).all()]
    if bad:
        raise ValueError(f"{path}: expected finite weights, found NaN or inf in {', '.join(bad)}")
    return {key: checked[key] for key in SHAPES}


def convert(src: str | Path, out: str | Path) -> dict[str, np.ndarray]:
    """Read ``src`` (restricted), check it is the hammer MLP, write ``out`` atomically; returns what was written."""
    policy = read_policy(src)
    arrays = expert_arrays(policy, src)
    payload = {**arrays, "source_sha256": np.array(hashlib.sha256(Path(src).read_bytes()).hexdigest())}
    save_npz_atomic(out, payload)
    return payload


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funk_rl.convert_expert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the DAPG authors' hammer-v0.pickle (mjrl Gaussian MLP policy)")
    parser.add_argument("out", help="expert file to write (.npz), e.g. funk_rl/experts/dapg-hammer-v0.npz")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = main_parser().parse_args(argv)
    payload = convert(args.src, args.out)
    print(
        f"wrote {args.out}: DAPG hammer MLP {'->'.join(map(str, LAYER_SIZES))} from {args.src} "
        f"(sha256 {payload['source_sha256']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
