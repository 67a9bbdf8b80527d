"""The dual encoder: product tower (vision tower + text tower, fused) and attribute tower.

- Vision: an open_clip tower trained from scratch at a size that trains on 2 CPU cores:
  `vision_tower: resnet` (open_clip's ModifiedResNet, the default: convolutions learn from a few
  thousand photos, a ViT needs far more) or `vit` (open_clip's VisionTransformer, kept as a config
  to compare). `pretrained_vision` loads open_clip weights from a local checkpoint instead.
- Text (both towers): frozen MiniLM (all-MiniLM-L6-v2, offline package) sentence features, cached
  per text, each tower with its own trainable projection head; plus a trainable bag of hashed words
  shared by both towers (`token_buckets`), the part of the text tower that adapts: a product that
  says "navy" and the attribute "colour: navy" meet in the same learned word vectors.
- Product = normalise(w * image + (1 - w) * text) with a learned w; text alone without a photo;
  image alone for image-only evaluation.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ml.loss import MultiPositiveClipLoss

TEXT_FEATURE_DIM = 384  # MiniLM-L6
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class DualEncoderConfig:
    embed_dim: int = 256
    vision_tower: str = "resnet"        # resnet | vit
    image_size: int = 96
    resnet_layers: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    resnet_width: int = 24
    patch_size: int = 8                 # vit only
    vision_width: int = 192             # vit only
    vision_layers: int = 4              # vit only
    vision_heads_width: int = 64
    head_hidden: int = 512
    token_buckets: int = 65536          # hashed words of the learned bag; 0 = MiniLM features only
    token_dim: int = 128
    pretrained_vision: str | None = None  # local open_clip checkpoint (state dict of a `visual` tower)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "DualEncoderConfig":
        """A saved config; keys older models did not write get the values those models were built with
        (a ViT and no word bag), so every registered version still loads."""
        return cls(**{**LEGACY_DEFAULTS, **saved})


# What a config saved before these settings existed meant.
LEGACY_DEFAULTS = {"vision_tower": "vit", "token_buckets": 0}


def projection(hidden: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(TEXT_FEATURE_DIM, hidden), nn.GELU(), nn.Linear(hidden, out))


def hashed_words(texts: list[str], buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, offsets) for nn.EmbeddingBag: each text's distinct lowercase words, hashed with CRC-32
    (stable across processes and machines, unlike Python's hash) into `buckets` rows."""
    ids, offsets = [], []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(sorted({zlib.crc32(w.encode()) % buckets for w in _WORD.findall((text or "").lower())}))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class DualEncoder(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        self.cfg = cfg
        if cfg.vision_tower == "resnet":
            vision = CLIPVisionCfg(layers=list(cfg.resnet_layers), width=cfg.resnet_width,
                                   head_width=cfg.vision_heads_width, image_size=cfg.image_size)
        elif cfg.vision_tower == "vit":
            vision = CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width, head_width=cfg.vision_heads_width,
                                   patch_size=cfg.patch_size, image_size=cfg.image_size)
        else:
            raise ValueError(f"vision_tower must be 'resnet' or 'vit', not {cfg.vision_tower!r}")
        self.visual = _build_vision_tower(cfg.embed_dim, vision)
        if cfg.pretrained_vision:
            load_vision_weights(self.visual, cfg.pretrained_vision)
        self.product_text = projection(cfg.head_hidden, cfg.embed_dim)
        self.attribute_text = projection(cfg.head_hidden, cfg.embed_dim)
        if cfg.token_buckets:
            self.words = nn.EmbeddingBag(cfg.token_buckets, cfg.token_dim, mode="mean")
            nn.init.normal_(self.words.weight, std=0.02)
            self.product_words = nn.Linear(cfg.token_dim, cfg.embed_dim, bias=False)
            self.attribute_words = nn.Linear(cfg.token_dim, cfg.embed_dim, bias=False)
        self.image_weight_logit = nn.Parameter(torch.zeros(()))
        self.criterion = MultiPositiveClipLoss()

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The learned word bag's input for these texts (None when the model has no word bag)."""
        return hashed_words(texts, self.cfg.token_buckets) if self.cfg.token_buckets else None

    def _words(self, tokens, head: str) -> torch.Tensor | float:
        # The head is named, not passed: a model without a word bag (token_buckets 0, every version
        # saved before the bag existed) has no such module to look up.
        if tokens is None or not self.cfg.token_buckets:
            return 0.0
        return getattr(self, head)(self.words(*tokens))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(images), dim=-1)

    def encode_product_text(self, text_features: torch.Tensor, tokens=None) -> torch.Tensor:
        return F.normalize(self.product_text(text_features) + self._words(tokens, "product_words"), dim=-1)

    def encode_attributes(self, attribute_features: torch.Tensor, tokens=None) -> torch.Tensor:
        return F.normalize(self.attribute_text(attribute_features) + self._words(tokens, "attribute_words"), dim=-1)

    def encode_vocabulary(self, attribute_features: torch.Tensor, word_texts: list[str]) -> torch.Tensor:
        """Attribute embeddings of a vocabulary: MiniLM features plus the word bag over each
        attribute's words (ml/data.py attribute_words). Used by training and by the saved bundle."""
        return self.encode_attributes(attribute_features, self.tokenize(word_texts))

    def fuse(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Combine normalised image and text embeddings of the same products."""
        w = torch.sigmoid(self.image_weight_logit)
        return F.normalize(w * image + (1 - w) * text, dim=-1)

    def encode_product(self, text_features: torch.Tensor | None, images: torch.Tensor | None,
                       has_image: torch.Tensor | None = None, tokens=None) -> torch.Tensor:
        """Product embeddings: the one definition of the image+text step, used by training,
        evaluation and the served model.

        - images=None: text only; text_features=None: image only (one row per image).
        - has_image=None: `images` holds one photo per row of `text_features`.
        - has_image=(N,) bool: `images` holds photos of the rows where it is True, in order; the
          other rows get their text embedding.
        """
        if images is None:
            return self.encode_product_text(text_features, tokens)
        image = self.encode_image(images)
        if text_features is None:
            return image
        text = self.encode_product_text(text_features, tokens)
        if has_image is None:
            return self.fuse(image, text)
        if int(has_image.sum()) != len(image):
            raise ValueError(f"has_image marks {int(has_image.sum())} rows with a photo but {len(image)} images were given")
        out = text.clone()
        out[has_image] = self.fuse(image, text[has_image])
        return out


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
