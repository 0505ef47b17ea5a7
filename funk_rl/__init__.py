"""funk_rl: a policy for the ADROIT hand that hammers a nail from funk's frozen features (RRL's setting).

``envs`` makes the hammer environment (fast offscreen rendering, DAPG's reward and success rule, the expert's
labels in the worker); ``expert`` is the DAPG authors' hammer policy; ``encoders`` turns batches of frames
into observation vectors; ``vec_env`` runs N environments with one batched forward pass per step;
``policy``, ``bc``, ``dagger`` and ``dapg`` are the learning pieces; ``rollouts`` runs seeded episodes;
``train_hammer`` is the recipe, ``evaluate`` measures a run, ``demos`` and ``plot`` are tools. Only
funk_perception's public detector API is used. docs/RL.md explains the recipe and its measurements.

Entry points import torch before anything that can make a GL context: triton's LLVM and Mesa's LLVM crash
the process otherwise (docs/DESIGN.md, "Import torch first").
"""
