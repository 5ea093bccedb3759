"""Loaded models: an adapter ready to run plus what result documents say about it, and the
per-process cache that loads each registry model at most once."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from framefleet.core.modelstore import ModelStore
from framefleet.core.registry import ModelSpec, Registry
from framefleet.inference.models import load_adapter
from framefleet.inference.models.base import Adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A ready adapter plus what results must say about it."""

    spec: ModelSpec
    adapter: Adapter
    sha256: str


@dataclass
class ModelCache:
    """Networks loaded in this process, by registry name; each is loaded at most once."""

    registry: Registry
    store: ModelStore
    _loaded: dict[str, LoadedModel] = field(default_factory=dict)

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name``, loading it on first use.

        Raises:
            UnknownModelError, ModelError: the name is unknown or its files cannot be loaded.
        """
        model = self._loaded.get(name)
        if model is None:
            spec = self.registry.get(name)
            adapter = load_adapter(spec, self.store)
            digest = self.store.digest(spec.files["model"])  # cached by load_adapter's check
            model = LoadedModel(spec=spec, adapter=adapter, sha256=digest)
            self._loaded[name] = model
            log.info("pid %d loaded model %s (%s)", os.getpid(), name, spec.description)
        return model

    def names(self) -> list[str]:
        """Names of the models loaded so far."""
        return sorted(self._loaded)
