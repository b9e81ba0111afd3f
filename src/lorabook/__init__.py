"""lora-book: LoRA (Hu et al., 2021), implemented small, tested against peft and loralib."""

from lorabook.adapters import (
    AdapterFileError,
    AdapterMismatchError,
    export_peft,
    import_peft,
    load_adapter,
    save_adapter,
)
from lorabook.inject import (
    PAPER_TARGETS,
    ParamReport,
    add_lora,
    apply_lora,
    lora_layers,
    lora_param_count,
    merge_and_unload,
    merge_lora,
    parameter_report,
    unmerge_lora,
)
from lorabook.layers import LoRALayer
from lorabook.models import OFFLINE_MODELS, ModelNotAvailableError, load_pretrained, resolve_model

__all__ = [
    "AdapterFileError",
    "AdapterMismatchError",
    "export_peft",
    "import_peft",
    "load_adapter",
    "save_adapter",
    "PAPER_TARGETS",
    "LoRALayer",
    "ModelNotAvailableError",
    "OFFLINE_MODELS",
    "load_pretrained",
    "resolve_model",
    "ParamReport",
    "add_lora",
    "apply_lora",
    "lora_layers",
    "lora_param_count",
    "merge_and_unload",
    "merge_lora",
    "parameter_report",
    "unmerge_lora",
]
__version__ = "0.1.0"
