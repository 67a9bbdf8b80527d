"""The dual encoder: product tower (open_clip vision tower + text tower, fused) and attribute tower.

- Vision: an open_clip VisionTransformer, trained from scratch by default at a size that trains on
  2 CPU cores; `pretrained_vision` loads open_clip weights from a local checkpoint instead.
- Text (both towers): MiniLM (all-MiniLM-L6-v2, offline package) sentence features, kept frozen
  and cached per text, each tower with its own trainable projection head into the joint space.
- Product = normalise(w * image + (1 - w) * text) with a learned w; text alone without a photo;
  image alone for image-only evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ml.loss import MultiPositiveClipLoss

TEXT_FEATURE_DIM = 384  # MiniLM-L6


@dataclass
class DualEncoderConfig:
    embed_dim: int = 256
    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 192
    vision_layers: int = 4
    vision_heads_width: int = 64
    head_hidden: int = 512
    pretrained_vision: str | None = None  # local open_clip checkpoint (state dict of a `visual` tower)

    def to_dict(self) -> dict:
        return asdict(self)


def projection(hidden: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(TEXT_FEATURE_DIM, hidden), nn.GELU(), nn.Linear(hidden, out))


class DualEncoder(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        self.cfg = cfg
        self.visual = _build_vision_tower(cfg.embed_dim, CLIPVisionCfg(
            layers=cfg.vision_layers, width=cfg.vision_width, head_width=cfg.vision_heads_width,
            patch_size=cfg.patch_size, image_size=cfg.image_size))
        if cfg.pretrained_vision:
            load_vision_weights(self.visual, cfg.pretrained_vision)
        self.product_text = projection(cfg.head_hidden, cfg.embed_dim)
        self.attribute_text = projection(cfg.head_hidden, cfg.embed_dim)
        self.image_weight_logit = nn.Parameter(torch.zeros(()))
        self.criterion = MultiPositiveClipLoss()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(images), dim=-1)

    def encode_product_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.product_text(text_features), dim=-1)

    def encode_attributes(self, attribute_features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.attribute_text(attribute_features), dim=-1)

    def fuse(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Combine normalised image and text embeddings of the same products."""
        w = torch.sigmoid(self.image_weight_logit)
        return F.normalize(w * image + (1 - w) * text, dim=-1)

    def encode_product(self, text_features: torch.Tensor | None, images: torch.Tensor | None,
                       has_image: torch.Tensor | None = None) -> torch.Tensor:
        """Fused product embedding; pass text_features=None for image-only, images=None for text-only."""
        if images is None:
            return self.encode_product_text(text_features)
        image = self.encode_image(images)
        if text_features is None:
            return image
        fused = self.fuse(image, self.encode_product_text(text_features))
        if has_image is None:
            return fused
        return torch.where(has_image[:, None], fused, text)


def load_vision_weights(visual: nn.Module, path: str) -> None:
    """Load an open_clip checkpoint's vision tower: a full CLIP state dict (keys `visual.*`) or the
    tower alone. Shapes must match the configured tower; mismatches are an error, not a warning."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    missing, unexpected = visual.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit the vision tower: missing={missing[:5]} unexpected={unexpected[:5]}")
