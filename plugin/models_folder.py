"""The model folder in the QGIS profile, seen through engine.models.registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def models_dir() -> str:
    """<QGIS profile>/fbp_landcover/models (created on first use)."""
    from qgis.core import QgsApplication

    path = Path(QgsApplication.qgisSettingsDirPath()) / "fbp_landcover" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what the registry resolves
    path: str
    summary: str  # one line of metadata for the combo box tooltip and the diagnostics
    trained_on: str = ""  # the card's provenance: what the weights were trained on, in its own words

    @property
    def not_real(self) -> bool:
        """Trained on generated data, or not trained at all: its maps are not land cover of a real place."""
        text = self.trained_on.lower()
        return any(word in text for word in ("synthetic", "generated", "untrained", "random weights"))


def _summary(card) -> str:
    parts = []
    for key in ("architecture", "smp_arch", "encoder", "sensor", "gsd"):
        value = getattr(card, key, None)
        if value not in (None, ""):
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def model_entries(folder: str | None = None) -> list[ModelEntry]:
    """The registered models with their metadata, sorted by name."""
    from ..engine.models import registry

    folder = folder or models_dir()
    return [ModelEntry(name, str(path), _summary(card), _trained_on(card))
            for name, card, path in registry.list_models(folder)]


def _trained_on(card) -> str:
    said = (getattr(card, "provenance", None) or {}).get("trained_on", "")
    return str(said or "not stated in the model card")


def add_model(src: str, folder: str | None = None) -> ModelEntry:
    """Check and copy (or import) a model file into the folder; returns its entry."""
    from ..engine.models import registry

    folder = folder or models_dir()
    from ..engine.models.card import model_stem
    from ..engine.models.fbpmodel import read_card

    path = registry.add_model(src, folder)  # the registered file
    card = read_card(path)
    return ModelEntry(model_stem(path), str(path), _summary(card), _trained_on(card))
