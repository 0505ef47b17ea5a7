"""The vectorised feature environment: equals the encoder on the same frames, batched == per-env,
reproducible seeding, the episode-end frame encoded too, workers gone after close, an exception and Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from funk_rl.encoders import FrameEncoder, ObservationEncoderConfig, build_encoder
from funk_rl.envs import PROPRIO_DIM, HammerConfig
from funk_rl.vec_env import make_vec_env, make_worker_vec_env, worker_pids

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "funk-lite0-synth.pt"
SIZE = 64  # small frames keep the tests fast; the encoder is fully convolutional
HAMMER = HammerConfig(image_size=SIZE, max_episode_steps=4)


@pytest.fixture(scope="module")
def encoder() -> FrameEncoder:
    torch.set_num_threads(1)
    return build_encoder(ObservationEncoderConfig("funk", str(MODEL), precision="fp32", device="cpu"), image_size=SIZE)


def _actions(step: int, n: int) -> np.ndarray:
    return np.random.default_rng(step).uniform(-1, 1, (n, 26)).astype(np.float32)


def _gone(pids: list[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return False


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_observations_are_the_encoder_on_the_same_frames_batched_or_not(encoder: FrameEncoder) -> None:
    raw = make_worker_vec_env(HAMMER, 2, seed=7, observation="pixels")
    batched = make_vec_env(HAMMER, encoder, 2, seed=7, batched=True)
    per_env = make_vec_env(HAMMER, encoder, 2, seed=7, batched=False)
    try:
        frames = raw.reset()
        obs_b, obs_p = batched.reset(), per_env.reset()
        for step in range(6):  # crosses an episode end (4 steps): auto-reset and terminal frames
            expected = np.concatenate([encoder(frames["pixels"]).numpy(), frames["proprio"]], axis=1)
            np.testing.assert_allclose(obs_b, expected, atol=1e-5)
            np.testing.assert_allclose(obs_p, obs_b, atol=1e-5)
            assert obs_b.shape == (2, encoder.dim + PROPRIO_DIM) and obs_b.dtype == np.float32
            actions = _actions(step, 2)
            frames, _, raw_done, raw_infos = raw.step(actions)
            obs_b, _, done, infos = batched.step(actions)
            obs_p, *_ = per_env.step(actions)
            np.testing.assert_array_equal(done, raw_done)
            if done.any():
                last = raw_infos[0]["terminal_observation"]
                want = np.concatenate([encoder(last["pixels"][None]).numpy()[0], last["proprio"]])
                np.testing.assert_allclose(infos[0]["terminal_observation"], want, atol=1e-5)
                assert infos[0]["episode"]["l"] == 4 and "is_success" in infos[0]
        assert batched.timings["encode"] > 0 and batched.timings["env"] > 0
    finally:
        for venv in (raw, batched, per_env):
            venv.close()


def test_seeding_is_reproducible_and_environments_differ(encoder: FrameEncoder) -> None:
    def board_heights(seed: int) -> np.ndarray:
        venv = make_vec_env(HammerConfig(image_size=SIZE), None, 3, seed=seed)
        try:
            return venv.reset()[:, 42:45].copy()  # nail position: the board height is drawn at reset
        finally:
            venv.close()

    first, again, other = board_heights(11), board_heights(11), board_heights(12)
    np.testing.assert_array_equal(first, again)
    assert len({round(float(z), 6) for z in first[:, 2]}) == 3  # each worker has its own seed
    assert not np.array_equal(first, other)


def test_workers_are_gone_after_close_and_after_an_exception(encoder: FrameEncoder) -> None:
    venv = make_vec_env(HAMMER, encoder, 2, seed=0)
    pids = worker_pids(venv)
    assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    venv.reset()
    venv.close()
    assert _gone(pids)
    # An error while building the wrapper must not leak the workers it started.
    wrong_size = build_encoder(ObservationEncoderConfig("imagenet", str(MODEL), device="cpu"), image_size=32)
    before = {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(ValueError, match="64x64 px for an encoder of 32 px"):
        make_vec_env(HAMMER, wrong_size, 2, seed=0)
    leaked = {p.pid for p in multiprocessing.active_children()} - before
    assert _gone(list(leaked))


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def test_ctrl_c_leaves_no_orphan_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "funk_rl.train_hammer",
        "--encoder",
        "state",
        "--n-envs",
        "2",
        "--steps",
        "100000",
        "--eval-episodes",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore Ctrl-C's default.
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 600  # start-up is slow on a loaded 2-core machine
        while not (out / "eval.csv").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
        assert (out / "eval.csv").exists(), "training did not start"
        tree = _descendants(process.pid)
        assert len(tree) >= 4  # forkserver(s) and the train + eval workers
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        assert process.wait(timeout=300) != 0  # workers are closed first; slow on a loaded machine
        assert _gone(tree), f"orphans: {[p for p in tree if Path(f'/proc/{p}').exists()]}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
