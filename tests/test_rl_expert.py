"""The DAPG hammer expert: the shipped npz is the authors' pickle read safely, it acts like mjrl's network, it
succeeds on funk_rl's environment, a hostile pickle or a bad npz is refused, and the module stays torch-free."""

from __future__ import annotations

import collections
import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from funk_rl.convert_expert import RefusedGlobal, RestrictedUnpickler, convert, expert_arrays, read_policy
from funk_rl.envs import make_hammer_env
from funk_rl.evaluate import main as evaluate_main
from funk_rl.expert import DEFAULT_EXPERT, SHAPES, DapgExpert

ROOT = Path(__file__).resolve().parents[1]
PICKLE = ROOT.parent / "shared/data/dapg-hammer-policy/hammer-v0.pickle"
needs_pickle = pytest.mark.skipif(
    not PICKLE.is_file(), reason=f"the DAPG authors' pickle is not at {PICKLE} (../shared/data is absent)"
)
SEED = 3_000_000  # the documented evaluation seeds (funk_rl/experts/README.md)


def _states(count: int, seed: int) -> np.ndarray:
    """``count`` states around real ones: the expert's own trajectory from one reset, plus noise."""
    expert = DapgExpert.load()
    env = make_hammer_env(observation="state")
    try:
        obs, _ = env.reset(seed=seed)
        states = []
        for _ in range(count):
            states.append(obs)
            obs, *_ = env.step(expert.act(obs))
    finally:
        env.close()
    rng = np.random.default_rng(seed)
    return np.stack(states).astype(np.float64) + rng.normal(0.0, 0.05, (count, 46))


def _mjrl_forward(policy: Any, obs: torch.Tensor) -> torch.Tensor:
    """mjrl.utils.fc_network.FCNetwork.forward on the pickle's own tensors (in float64, to compare to 1e-6)."""
    model = policy.model
    layers = list(model._modules["fc_layers"]._modules.values())
    out = (obs - model.in_shift.double()) / (model.in_scale.double() + 1e-8)
    for i, layer in enumerate(layers):
        out = F.linear(out, layer._parameters["weight"].double(), layer._parameters["bias"].double())
        if i < len(layers) - 1:
            out = model.nonlinearity(out)
    return out * model.out_scale.double() + model.out_shift.double()


@needs_pickle
def test_shipped_expert_acts_like_the_pickle_and_converts_reproducibly(tmp_path: Path) -> None:
    policy = read_policy(PICKLE)
    obs = _states(100, SEED + 100)
    with torch.no_grad():
        reference = _mjrl_forward(policy, torch.from_numpy(obs)).numpy()
    actions = DapgExpert.load().act(obs)
    assert actions.shape == (100, 26) and actions.dtype == np.float32
    inside = np.abs(reference) < 1.0
    assert inside.mean() > 0.5, "the states should mostly give unclipped actions, or clipping hides differences"
    np.testing.assert_allclose(actions, np.clip(reference, -1.0, 1.0), rtol=0, atol=1e-6)

    again = convert(PICKLE, tmp_path / "again.npz")
    with np.load(DEFAULT_EXPERT, allow_pickle=False) as shipped:
        assert sorted(shipped.files) == sorted(again)
        for key in shipped.files:
            assert shipped[key].dtype == again[key].dtype and shipped[key].tobytes() == again[key].tobytes(), key


@needs_pickle
def test_converter_rejects_a_network_of_another_shape(tmp_path: Path) -> None:
    policy = read_policy(PICKLE)
    policy.model._modules["fc_layers"]._modules["1"]._parameters["weight"] = torch.zeros(64, 32)
    with pytest.raises(ValueError, match=r"expected the DAPG hammer MLP 46->32->32->26.*found 3 layers.*w1 \(64, 32\)"):
        expert_arrays(policy, PICKLE)


class _Hostile:
    """Unpickling it would run a shell command (creating ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class _Getattr:
    """Unpickling it calls getattr on an allowed global for something other than tanh."""

    def __reduce__(self) -> tuple[Any, tuple[Any, str]]:
        return getattr, (collections.OrderedDict, "fromkeys")


def test_restricted_unpickler_refuses_other_globals_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.pickle"
    hostile.write_bytes(pickle.dumps(_Hostile(marker)))
    with pytest.raises(ValueError, match=rf"{hostile}.*refused global {os.system.__module__}\.system"):
        read_policy(hostile)
    assert not marker.exists()
    with open(hostile, "rb") as handle, pytest.raises(RefusedGlobal):
        RestrictedUnpickler(handle).load()

    sneaky = tmp_path / "getattr.pickle"
    sneaky.write_bytes(pickle.dumps(_Getattr()))
    with pytest.raises(ValueError, match=r"getattr is allowed only for torch\._C\._VariableFunctions\.tanh"):
        read_policy(sneaky)

    foreign = tmp_path / "dict.pickle"
    foreign.write_bytes(pickle.dumps({"weights": [1.0]}))
    with pytest.raises(
        ValueError,
        match=rf"{foreign}: expected a pickled mjrl\.policies\.gaussian_mlp\.MLP, "
        r"found dict",
    ):
        read_policy(foreign)


def _shipped_arrays() -> dict[str, np.ndarray]:
    with np.load(DEFAULT_EXPERT, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def test_bad_expert_files_are_refused_naming_file_and_array(tmp_path: Path) -> None:
    arrays = _shipped_arrays()
    assert set(arrays) == {*SHAPES, "source_sha256"}

    missing = tmp_path / "missing-key.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "w1"})
    with pytest.raises(ValueError, match=rf"{missing}: missing array 'w1' of shape \(32, 32\)"):
        DapgExpert.load(missing)

    wrong = tmp_path / "wrong-shape.npz"
    np.savez(wrong, **{**arrays, "w0": arrays["w0"].T})
    with pytest.raises(
        ValueError,
        match=rf"{wrong}: array 'w0': expected float of shape \(32, 46\), "
        r"found float64 of shape \(46, 32\)",
    ):
        DapgExpert.load(wrong)

    text = tmp_path / "not.npz"
    text.write_text("weights")
    with pytest.raises(ValueError, match=rf"{text}: expected an \.npz expert file"):
        DapgExpert.load(text)

    with pytest.raises(ValueError, match=rf"{tmp_path / 'absent.npz'}: expert file not found"):
        DapgExpert.load(tmp_path / "absent.npz")


def test_act_takes_one_state_or_a_batch() -> None:
    expert = DapgExpert.load()
    obs = _states(4, SEED + 200)
    single = expert.act(obs[0])
    assert single.shape == (26,) and single.dtype == np.float32
    np.testing.assert_array_equal(single, expert.act(obs)[0])
    assert expert.log_std.shape == (26,) and expert.source_sha256 == str(_shipped_arrays()["source_sha256"])
    with pytest.raises(ValueError, match=r"expected observations of shape \(46,\) or \(N, 46\), found \(4, 39\)"):
        expert.act(obs[:, :39])


def _measure(tmp_path: Path, expert: Path, episodes: int) -> dict[str, Any]:
    out = tmp_path / "eval.json"
    argv = ["--expert", str(expert), "--episodes", str(episodes), "--seed", str(SEED), "--json", str(out)]
    assert evaluate_main(argv) == 0
    return json.loads(out.read_text())


def test_shipped_expert_succeeds_and_a_broken_one_does_not(tmp_path: Path) -> None:
    result = _measure(tmp_path, DEFAULT_EXPERT, 10)
    assert result["episodes"] == 10 and result["successes"] >= 9, result
    # A network whose output layer is zeroed always outputs out_shift: the count above means something.
    broken = tmp_path / "broken.npz"
    arrays = _shipped_arrays()
    np.savez(broken, **{**arrays, "w2": np.zeros_like(arrays["w2"])})
    result = _measure(tmp_path, broken, 2)
    assert result["successes"] == 0, result


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FUNK_TRACEBACK"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_expert_module_does_not_import_torch() -> None:
    # Environment worker processes import it (funk_rl.envs.ExpertLabels); torch would cost them memory and start-up.
    done = _run("-c", "import funk_rl.expert, sys; assert 'torch' not in sys.modules, 'torch imported'")
    assert done.returncode == 0, done.stderr


def test_convert_cli_reports_a_missing_pickle_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    done = _run("-m", "funk_rl.convert_expert", str(tmp_path / "missing.pickle"), str(out))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and "missing.pickle: DAPG policy pickle not found" in errors[0], done.stderr
    assert not out.exists()
