"""Models by name: ``mlp``, ``logreg``, ``cnn`` (and user models via :func:`register_model`)."""

from activews.models import zoo  # noqa: F401  (registers the built-in models)
from activews.models.base import MODELS, ModelParams, ModelSpec, build_model, model_params, register_model

__all__ = ["MODELS", "ModelParams", "ModelSpec", "build_model", "model_params", "register_model"]
