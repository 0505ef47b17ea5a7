"""funk_grasp: grasp-success prediction from functional features (paper Table 4; docs/DESIGN.md, "Grasp success").

A simulated parallel-jaw grasp dataset (``sim``, ``generate``), a reader for
the Pinto-Gupta patch layout (``data``), the success model (``model``), its
training (``train``), ranking grasps on a new image (``predict``) and the
three-row benchmark (``benchmark``). It uses only funk_perception's public
encoder API.
"""

import funk_perception.offscreen_gl  # noqa: F401  (MUJOCO_GL before MuJoCo loads, for every submodule)
