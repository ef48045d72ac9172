"""Models by name: ``mlp``, ``paper_mlp``, ``logreg``, ``cnn``, ``resnet18``, ``resnet18_wide``.

User models register with :func:`register_model`.
"""

from activews.models import resnet, zoo  # noqa: F401  (importing them registers the built-in models)
from activews.models.base import (
    MODELS,
    ModelParams,
    ModelSpec,
    build_from_factory,
    build_model,
    draw_seeded,
    meta_model,
    model_params,
    register_model,
    same_architecture,
)

__all__ = [
    "MODELS",
    "ModelParams",
    "ModelSpec",
    "build_from_factory",
    "build_model",
    "draw_seeded",
    "meta_model",
    "model_params",
    "register_model",
    "same_architecture",
]
