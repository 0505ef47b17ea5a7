"""funk_rl: RRL-style ADROIT hammering with funk's frozen encoder as the observation (SPEC section 8, issue 8).

``envs`` makes the hammer environment (fast offscreen rendering, the DAPG
reward and success rule); ``encoders`` turns batches of frames into
observation vectors; ``features`` is the vectorised environment that runs one
batched forward pass per step; ``train_hammer``, ``demos``, ``bc`` and
``plot`` are the jobs on top. Only funk_perception's public API is used.

Entry points import torch before anything that can make a GL context
(FIELD-NOTES: triton's LLVM and Mesa's LLVM crash the process otherwise).
"""
