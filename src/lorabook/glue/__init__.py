"""GLUE for the LoRA paper's Table 2: data loading, tokenisation and metrics.

    from lorabook.glue import load_glue, glue_metrics
    dev = load_glue("rte", "validation")            # offline TSVs, or the hub
    glue_metrics("rte", logits, dev["label"])       # {"accuracy": ...}

``python -m lorabook.glue`` runs experiments (see ``lorabook.glue.experiment``).
"""

from lorabook.glue.data import (
    GLUE_TASKS,
    OFFLINE_TASKS,
    GlueFormatError,
    GlueTask,
    get_task,
    load_glue,
    subset,
    task_file,
    tokenize_glue,
)
from lorabook.glue.metrics import glue_metrics, primary_metric

__all__ = [
    "GLUE_TASKS",
    "OFFLINE_TASKS",
    "GlueFormatError",
    "GlueTask",
    "get_task",
    "glue_metrics",
    "load_glue",
    "primary_metric",
    "subset",
    "task_file",
    "tokenize_glue",
]
