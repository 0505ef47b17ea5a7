"""Environment steps per second of the RL hammer loop, and where a step's time goes.

    python benchmarks/bench_rl.py [--sizes 1 4 8 16] [--steps 8] [--encoder funk] [--device auto]

For N = 1, 4, 8, 16 environments in worker processes: ``state`` (no rendering),
``render`` (frames rendered and sent back, no features), ``batched`` (frames +
ONE forward pass of the frozen encoder per step) and ``per-env`` (one forward
pass per environment per step, the RRL code's design). Each cell is the median
over 3 timed runs of ``--steps`` vector steps (random actions, after 2 warm-up
steps), the variants taking turns on the same workers; steps/s counts
environment steps (N per vector step). Also measured:
the encoders alone on a batch of 16 frames in float32 and bf16 (autocast) with
the bf16 error, and the PPO update's cost per sample. Writes
benchmarks/results/rl.json and rl.md (machine, date, command).
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, report_header, write_report  # noqa: E402

from funk_rl.encoders import VISUAL_ENCODERS, ObservationEncoderConfig, build_encoder
from funk_rl.envs import ACTION_DIM, HammerConfig
from funk_rl.train_hammer import TrainConfig
from funk_rl.vec_env import FeatureVecEnv, make_worker_vec_env

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VARIANTS = ("state", "render", "batched", "per-env")
REPEATS = 3


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32)


def time_block(venv, steps: int, rng: np.random.Generator, device: torch.device) -> dict[str, float]:
    """Seconds per vector step of ``steps`` random-action steps, with the split the wrappers measured."""
    timings = getattr(venv, "timings", None)
    before = dict(timings) if timings is not None else {}
    render, render_cpu = 0.0, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, _, infos = venv.step(_actions(rng, venv.num_envs))
        render += sum(info.get("render_s", 0.0) for info in infos)
        render_cpu += sum(info.get("render_cpu_s", 0.0) for info in infos)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    spent = {k: (timings[k] - before.get(k, 0.0)) / steps for k in ("encode", "encode_cpu", "env")} if timings else {}
    return {
        "s_per_step": wall / steps,
        "render_s_per_step": render / steps,
        "render_cpu_s_per_step": render_cpu / steps,
        "encode_s_per_step": spent.get("encode", 0.0),
        "encode_cpu_s_per_step": spent.get("encode_cpu", 0.0),
        "wait_s_per_step": spent.get("env", wall / steps),
    }


def bench_loops(
    args: argparse.Namespace, encoder, hammer: HammerConfig, device: torch.device, on_size=lambda rows: None
) -> list[dict]:
    """Per N: the variants take turns, REPEATS rounds, on the same workers (render, batched and per-env share
    one pixel VecEnv), so that the load of other jobs on a shared machine falls on all of them alike."""
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in args.sizes:
        state = make_worker_vec_env(hammer, n, args.seed, observation="state")
        pixels = make_worker_vec_env(hammer, n, args.seed, observation="pixels")
        features = FeatureVecEnv(pixels, encoder)
        try:
            loops = {"state": state, "render": pixels, "batched": features, "per-env": features}
            for venv in (state, features):
                venv.reset()
                for _ in range(2):
                    venv.step(_actions(rng, n))
            samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for _ in range(REPEATS):
                for variant in VARIANTS:
                    features.batched = variant != "per-env"
                    samples[variant].append(time_block(loops[variant], args.steps, rng, device))
        finally:
            state.close()
            features.close()
        for variant in VARIANTS:
            result = {key: statistics.median(s[key] for s in samples[variant]) for key in samples[variant][0]}
            result.update(n_envs=n, variant=variant, steps_per_s=n / result["s_per_step"])
            rows.append(result)
            print(
                f"N={n:>2} {variant:>8}: {result['steps_per_s']:7.1f} env steps/s (encode "
                f"{1000 * result['encode_s_per_step']:.0f} ms wall / {1000 * result['encode_cpu_s_per_step']:.0f} "
                f"ms CPU, render {1000 * result['render_cpu_s_per_step']:.0f} ms CPU per vector step)",
                flush=True,
            )
        for row in rows:
            same_n = {r["variant"]: r for r in rows if r["n_envs"] == row["n_envs"]}
            row["vs_per_env"] = row["steps_per_s"] / same_n["per-env"]["steps_per_s"]
            row["time_vs_render"] = row["s_per_step"] / same_n["render"]["s_per_step"]
        on_size(rows)  # what a kill (the OOM killer on a shared machine) leaves behind
    return rows


def bench_encoders(args: argparse.Namespace, image_size: int) -> list[dict]:
    """Each visual encoder alone on 16 rendered-size frames: ms per frame in fp32 and bf16, bf16's error."""
    frames = np.random.default_rng(args.seed).integers(0, 256, (16, image_size, image_size, 3), dtype=np.uint8)
    rows = []
    for name in VISUAL_ENCODERS:
        encoder = build_encoder(
            ObservationEncoderConfig(name, args.model, precision="fp32", device=args.device), image_size
        )
        outputs = {}
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            encoder.dtype = dtype
            encoder(frames)
            times = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                outputs[label] = encoder(frames).cpu()
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "encoder": name,
                    "precision": label,
                    "dim": encoder.dim,
                    "ms_per_frame": 1000 * statistics.median(times) / len(frames),
                }
            )
        error = ((outputs["bf16"] - outputs["fp32"]).norm(dim=1) / outputs["fp32"].norm(dim=1).clamp_min(1e-8)).max()
        rows[-1]["bf16_relative_error"] = rows[-2]["bf16_relative_error"] = float(error)
        print(
            f"{name:>15}: fp32 {rows[-2]['ms_per_frame']:.1f} ms/frame, bf16 {rows[-1]['ms_per_frame']:.1f} "
            f"(relative error {float(error):.4f})",
            flush=True,
        )
    return rows


def bench_learner(args: argparse.Namespace, obs_dim: int) -> dict:
    """PPO's update cost per sample for an observation of ``obs_dim`` (the MLP sees only vectors)."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = TrainConfig()
    space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)

    class Vectors(gym.Env):  # random vectors: the update's cost does not depend on their values
        observation_space = space
        action_space = gym.spaces.Box(-1, 1, (ACTION_DIM,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    class UpdateTimer(BaseCallback):  # a rollout's end to the next one's start is exactly one PPO update
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start: float | None = None

        def _on_rollout_end(self) -> None:
            self._start = time.process_time()

        def _on_rollout_start(self) -> None:
            if self._start is not None:
                self.seconds.append(time.process_time() - self._start)
                self._start = None

        def _on_step(self) -> bool:
            return True

    venv = DummyVecEnv([Vectors for _ in range(4)])
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=config.ppo_n_steps,
        batch_size=config.ppo_batch_size,
        n_epochs=config.ppo_epochs,
        policy_kwargs={"net_arch": list(config.net)},
        device=args.device if args.device != "auto" else "cpu",
        seed=args.seed,
    )
    samples = config.ppo_n_steps * 4
    timer = UpdateTimer()
    model.learn(4 * samples, callback=timer)
    seconds = statistics.median(timer.seconds)
    return {
        "obs_dim": obs_dim,
        "samples_per_update": samples,
        "epochs": config.ppo_epochs,
        "ms_per_sample": 1000 * seconds / samples,
    }


def _device(args: argparse.Namespace) -> torch.device:
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(args.device)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = _device(args)
    hammer = HammerConfig(image_size=args.image_size)
    encoder = build_encoder(
        ObservationEncoderConfig(args.encoder, args.model, precision=args.precision, device=str(device)),
        args.image_size,
    )
    header = _header(args, encoder)
    loops = bench_loops(
        args,
        encoder,
        hammer,
        device,
        on_size=lambda rows: write_report(args.out, "rl-partial", {**header, "loops": rows}, _loops_md),
    )
    encoders = bench_encoders(args, args.image_size)
    learner = bench_learner(args, encoder.dim + 26)
    return {**header, "loops": loops, "encoders": encoders, "learner": learner}


def _header(args: argparse.Namespace, encoder) -> dict:
    return {
        **report_header(),
        "machine": machine(
            device=torch.cuda.get_device_name(0) if _device(args).type == "cuda" else "cpu",
            torch=torch.__version__,
            torch_threads=args.threads,
        ),
        "encoder": args.encoder,
        "precision": "bf16" if encoder.dtype is not None else "fp32",
        "image_size": args.image_size,
        "steps_per_cell": args.steps,
        "repeats": REPEATS,
    }


def _loops_md(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# RL hammer loop throughput",
        "",
        f"{results['date']}, `{results['command']}`.",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, device {m['device']}, torch {m['torch']} "
        f"({m['torch_threads']} thread in the main process), load average {m['load_average']}. "
        f"Encoder `{results['encoder']}` ({results['precision']}), frames {results['image_size']} px, "
        f"median of {results['repeats']} runs of {results['steps_per_cell']} vector steps.",
        "",
        "Environment steps per second (N environments, worker processes):",
        "",
        "| N | state | render | render + batched features | render + per-env features | batched / per-env "
        "| batched time / render time | encoder CPU: per-env / batched |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({r["n_envs"] for r in results["loops"]}):
        row = {r["variant"]: r for r in results["loops"] if r["n_envs"] == n}
        lines.append(
            f"| {n} | {row['state']['steps_per_s']:.0f} | {row['render']['steps_per_s']:.1f} | "
            f"{row['batched']['steps_per_s']:.1f} | {row['per-env']['steps_per_s']:.1f} | "
            f"{row['batched']['vs_per_env']:.2f}x | {row['batched']['time_vs_render']:.2f} | "
            f"{row['per-env']['encode_cpu_s_per_step'] / row['batched']['encode_cpu_s_per_step']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def markdown(results: dict) -> str:
    lines = [_loops_md(results).rstrip("\n")]
    lines += [
        "",
        "Where a batched step's time goes, ms per environment step. Wall: waiting on the workers (simulation, "
        "rendering, frame transfer, scheduling) and the encoder call in the main process. CPU: seconds of CPU "
        "actually used, which the other jobs on a shared machine do not inflate; simulation + IPC is the state "
        "variant's wall time. PPO update: CPU ms per sample of one update (4 x 256 samples, 5 epochs):",
        "",
        "| N | total wall | wait wall | encoder wall | render CPU | encoder CPU | simulation + IPC (state, wall) "
        "| PPO update |",
        "|---|---|---|---|---|---|---|---|",
    ]
    learn_ms = results["learner"]["ms_per_sample"]
    for r in (r for r in results["loops"] if r["variant"] == "batched"):
        n = r["n_envs"]
        state = next(s for s in results["loops"] if s["variant"] == "state" and s["n_envs"] == n)
        lines.append(
            f"| {n} | {1000 * r['s_per_step'] / n:.1f} | {1000 * r['wait_s_per_step'] / n:.1f} | "
            f"{1000 * r['encode_s_per_step'] / n:.1f} | {1000 * r['render_cpu_s_per_step'] / n:.1f} | "
            f"{1000 * r['encode_cpu_s_per_step'] / n:.1f} | {1000 * state['s_per_step'] / n:.2f} | "
            f"{learn_ms:.2f} |"
        )
    lines += [
        "",
        "Encoders alone, batch of 16 frames:",
        "",
        "| encoder | dim | fp32 ms/frame | bf16 ms/frame | bf16 / fp32 time | bf16 relative error |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["encoder"] for r in results["encoders"]):
        fp32, bf16 = (
            next(r for r in results["encoders"] if r["encoder"] == name and r["precision"] == p)
            for p in ("fp32", "bf16")
        )
        lines.append(
            f"| {name} | {fp32['dim']} | {fp32['ms_per_frame']:.1f} | {bf16['ms_per_frame']:.1f} | "
            f"{bf16['ms_per_frame'] / fp32['ms_per_frame']:.2f} | {fp32['bf16_relative_error']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=8, help="vector steps per timed run")
    parser.add_argument("--encoder", choices=VISUAL_ENCODERS, default="funk")
    parser.add_argument("--model", default=ObservationEncoderConfig().model)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=TrainConfig().image_size)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    code = write_report(args.out, "rl", run(args), markdown)
    for suffix in (".json", ".md"):  # the per-size safety copy, superseded by the full report
        (args.out / f"rl-partial{suffix}").unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
