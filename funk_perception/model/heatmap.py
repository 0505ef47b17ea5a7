"""A keypoint heatmap head on the functional embedding, for reference-free ``detect``.

Prototype matching scores every cell on its own embedding (a 1 x 1 linear
classifier per keypoint): it cannot use where a cell sits on the object, which is
what tells a hammer's face from its handle end once both look like "a rounded
end". This head sees a neighbourhood of cells (two 3 x 3 convolutions, the second
dilated: a 7 x 7-cell field, half the 14 x 14 map) of the task-conditioned
embedding and gives five logit maps, one per keypoint, trained with a softmax over
the cells (:mod:`funk_perception.train.heatmap`). It is convolutional with no
coordinate input, so it has no built-in preference for where in the frame a
keypoint is, nor for which way an object faces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from funk_perception.tasks import NUM_KEYPOINTS


@dataclass(frozen=True)
class HeatmapConfig:
    """Sizes of the head; ``in_channels`` is the encoder's embedding size."""

    in_channels: int = 128
    hidden: int = 96
    keypoints: int = NUM_KEYPOINTS
    # one 3 x 3 convolution per entry after the first: (2,) is a 7 x 7-cell field, (2, 4) 15 x 15 (the whole map)
    dilations: tuple[int, ...] = (2,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))  # lists, as they read back
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"HeatmapConfig.dilations: expected one or more dilations >= 1, found {self.dilations}")


class KeypointHeatmapHead(nn.Module):
    """(B, D, h, w) unit embeddings -> (B, K, h, w) keypoint logits."""

    def __init__(self, config: HeatmapConfig | None = None) -> None:
        super().__init__()
        self.config = config or HeatmapConfig()
        c = self.config
        layers: list[nn.Module] = [nn.Conv2d(c.in_channels, c.hidden, 3, padding=1), nn.ReLU(inplace=True)]
        for d in c.dilations:
            layers += [nn.Conv2d(c.hidden, c.hidden, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(c.hidden, c.keypoints, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)

    def to_extra(self) -> dict[str, Any]:
        """What a checkpoint's ``extra["heatmap_head"]`` holds."""
        return {
            "config": asdict(self.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: str = "extra['heatmap_head']") -> KeypointHeatmapHead:
        if not isinstance(extra, Mapping) or "config" not in extra or "state_dict" not in extra:
            raise ValueError(f"{where}: expected a dict with 'config' and 'state_dict'")
        try:
            head = cls(HeatmapConfig(**extra["config"]))
            head.load_state_dict({k: torch.as_tensor(v).float() for k, v in extra["state_dict"].items()})
        except (TypeError, RuntimeError) as error:
            raise ValueError(f"{where}: not a keypoint heatmap head ({error})") from None
        return head.eval()
