"""Model cards: YAML metadata (library, pipeline tag, tags, datasets, license, model-index figures) + a human section.

Rendering and parsing go through `huggingface_hub.ModelCard`, so the cards are exactly what the Hub displays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .families import card_fields


@dataclass
class Figure:
    name: str  # e.g. "FID (MNIST classifier features)"
    value: float
    metric_type: str  # machine name, e.g. "fid-mnist"
    dataset: str = ""  # evaluation data, e.g. "MNIST test (10k)"


@dataclass
class CardInfo:
    """What the app shows about a model, read from its card."""

    title: str = ""
    pipeline_tag: str = ""
    task: str = ""
    datasets: list[str] = field(default_factory=list)
    license: str = ""
    tags: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def summary(self) -> str:
        figs = ", ".join(f"{f.name} {f.value:.4g}" for f in self.figures) or "no measured figures"
        data = ", ".join(self.datasets) or "unknown data"
        return f"{self.task or self.pipeline_tag or 'unknown task'} · {data} · {figs}"


def render_card(
    *,
    title: str,
    family: str,
    tags: list[str],
    datasets: list[str],
    license: str,
    figures: list[Figure],
    body: str,
    library_name: str = "aigc-hub",
    extra: dict | None = None,
) -> ModelCard:
    """A model card whose metadata carries `figures` as model-index results; its pipeline tag, task and the family's
    tags come from the family table (families.FAMILIES[family]), `tags` adds the model's own."""
    meta = card_fields(family, tags)
    pipeline_tag, task = meta["pipeline_tag"], meta["task"]
    task_type = pipeline_tag
    if "class-conditional" in tags and pipeline_tag == "unconditional-image-generation":
        # The Hub has no task for images made from a class label, and "unconditional" would be false: no pipeline tag.
        pipeline_tag, task_type = None, "class-conditional-image-generation"
    evals = [
        EvalResult(task_type=task_type, task_name=task, dataset_type=datasets[0] if datasets else "custom",
                   dataset_name=f.dataset or (datasets[0] if datasets else "custom"), metric_type=f.metric_type,
                   metric_name=f.name, metric_value=round(float(f.value), 6))
        for f in figures
    ]
    data = ModelCardData(
        model_name=title,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=["aigc-hub", *[t for t in meta["tags"] if t != "aigc-hub"]],
        datasets=datasets or None,
        license=license,
        eval_results=evals or None,
        **(extra or {}),
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n{body.strip()}\n")


def figures_table(figures: list[Figure]) -> str:
    """The human-readable table of figures for a card body."""
    rows = "\n".join(f"| {f.name} | {f.value:.4g} | {f.dataset} |" for f in figures)
    return "| metric | value | data |\n|---|---|---|\n" + rows if figures else "_Not evaluated._"


def read_card(folder: Path) -> CardInfo:
    """Parse `folder/README.md`; a missing or broken card gives an empty CardInfo, never an exception."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return CardInfo(title=Path(folder).name)
    try:
        card = ModelCard.load(path, ignore_metadata_errors=True)
    except Exception:  # a hand-edited card must not take the model list down
        return CardInfo(title=Path(folder).name)
    data = card.data
    figures = [
        Figure(name=r.metric_name or r.metric_type, value=float(r.metric_value), metric_type=r.metric_type,
               dataset=r.dataset_name)
        for r in (data.eval_results or [])
        if isinstance(r.metric_value, (int, float))
    ]
    task = (data.eval_results[0].task_name if data.eval_results else None) or data.pipeline_tag or ""
    datasets = data.datasets if isinstance(data.datasets, list) else [data.datasets] if data.datasets else []
    return CardInfo(
        title=data.model_name or Path(folder).name,
        pipeline_tag=data.pipeline_tag or "",
        task=task,
        datasets=list(datasets),
        license=data.license or "",
        tags=list(data.tags or []),
        figures=figures,
    )
