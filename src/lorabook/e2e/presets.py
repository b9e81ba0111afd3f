"""Hyperparameter presets for E2E: the paper's (Table 11) and one sized for a 2-core CPU.

``paper`` (GPT-2 medium/large, LoRA): Table 11 of the paper. AdamW, lr 2e-4, weight decay
0.01, dropout 0.1, label smoothing 0.1, batch 8, 5 epochs, 500 warm-up steps then linear
decay, r = 4 on W_q and W_v, α = 32. Decoding: beam 10, length penalty 0.9, no-repeat 4-gram.
Table 11 prints length penalty 0.9 for E2E; the official repository's README decodes E2E
with 0.8. We default to the table; ``--length-penalty 0.8`` gives the README's.
Other methods (ft, ft_top2, adapters, prefix) take the same schedule and the same lr 2e-4
(``PAPER_LR``): **our choice**; the paper quotes their numbers from Li & Liang (2021) and
lists no settings.

``cpu`` (ours): SmolLM2-135M on two CPU cores. Measured on this project's 2-core machine
(Nov 2026, float32, batch 8, ~58 tokens per example): a LoRA training step takes 2.4 s
(3.4 examples/s), a full-FT step about 1.5× that; beam-10 decoding of 32 MRs at a time
takes ~1.4 s per decoding step, so the 630 test MRs take 15–25 minutes whatever the model.
One LoRA run must train *and* decode the whole test set in at most about 75 minutes (the
issue's budget), and LoRA and FT both have to fit one working session, so we keep about
20 minutes of training: **4,000 training rows** (a seeded subset, ~10% of the 42,061, so not
every one of the 4,862 distinct MRs is seen), **1 epoch** (500 steps of batch 8), max 128
tokens (the longest training example is under 100), warm-up 50 steps (10%, the paper's
500 of ~26,000 steps is 2%; short runs need proportionally more). Learning rates are ours:
LoRA 1e-3 (r = 4, α = 32 as the paper; a higher lr than the paper's 2e-4 because one short
epoch is all there is), FT 5e-5. The dev loss after the epoch is computed on 400 dev rows.
The test set is decoded in full with the paper's decoding settings, by the paper's own beam
search (``lorabook.e2e.beam``), in bf16 where the CPU has it natively (``lorabook.precision``).
Records made before that (decoded by ``generate``, whose n-gram ban also covers the prompt,
in fp32) keep their names: ``LEGACY_DECODE`` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lorabook.cli import SettingsError
from lorabook.precision import PRECISIONS, cpu_precision
from lorabook.train import TrainConfig

PRESETS = ("paper", "cpu", "smoke")


ALGORITHMS = ("official", "transformers")
"""``official``: the paper's own beam search (``lorabook.e2e.beam.official_beam_search``);
``transformers``: ``generate(num_beams=...)``."""
NGRAM_SCOPES = ("continuation", "prompt+continuation")
"""Which tokens the no-repeat-n-gram rule looks at: the generated ones only (the paper's code),
or the prompt too (``generate(no_repeat_ngram_size=...)``, which forbids copying a slot value
of ``n`` tokens or more from the MR)."""
LEGACY_DECODE = {
    "algorithm": "transformers",
    "ngram_scope": "prompt+continuation",
    "precision": "no",
}
"""How every record made before these settings existed was decoded (they are left out of
``to_dict()`` at these values, so those records keep their names)."""


@dataclass(frozen=True)
class DecodeConfig:
    """Beam-search settings (the paper's Table 11, inference part, as its code runs them)."""

    num_beams: int = 10
    length_penalty: float = 0.9
    no_repeat_ngram_size: int = 4
    max_new_tokens: int = 64
    batch_mrs: int = 32  # MRs per generate() call (each expands to num_beams sequences)
    algorithm: str = "official"
    ngram_scope: str = "continuation"
    precision: str = "no"  # "bf16": decode under bf16 autocast (lorabook.precision)

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_new_tokens", "batch_mrs"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.no_repeat_ngram_size < 0:
            raise SettingsError(
                f"no_repeat_ngram_size must be ≥ 0, got {self.no_repeat_ngram_size}"
            )
        for name, choices in (
            ("algorithm", ALGORITHMS),
            ("ngram_scope", NGRAM_SCOPES),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in choices:
                raise SettingsError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.algorithm == "official" and self.ngram_scope != "continuation":
            raise SettingsError(
                "the official beam search bans n-grams of the continuation only: use "
                "algorithm='transformers' for ngram_scope='prompt+continuation'"
            )


@dataclass(frozen=True)
class E2EPreset:
    """Everything that decides one E2E run besides method, model and seed."""

    train: TrainConfig
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    max_length: int = 128
    label_smoothing: float = 0.1
    dropout: float = 0.1  # LoRA's dropout (the paper's --lora_dropout)
    train_examples: int | None = None  # None: every training row
    eval_examples: int | None = None  # dev rows for the per-epoch dev loss; None: all
    test_mrs: int | None = None  # None: all 630 unique test MRs
    lora_r: int = 4
    lora_alpha: float = 32
    adapter_size: int = 64
    # prefix's virtual tokens l_p: 2 · 24 · 1024 · 8 = 393,216 on GPT-2 medium, exactly LoRA
    # r = 4's count (Table 3 prints 0.35M for both; l_p = 7 gives 344,064, Li & Liang's 10
    # gives 491,520)
    prefix_length: int = 8
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.label_smoothing < 1:
            raise SettingsError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.dropout < 1:
            raise SettingsError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_length < 8:
            raise SettingsError(f"max_length must be at least 8, got {self.max_length}")
        for name in ("train_examples", "eval_examples", "test_mrs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name} must be at least 1 (or None for all), got {value}")
        if self.lora_r < 1:
            raise SettingsError(f"lora_r must be at least 1, got {self.lora_r}")
        if not self.lora_alpha > 0:
            raise SettingsError(f"lora_alpha must be positive, got {self.lora_alpha}")
        for name in ("adapter_size", "prefix_length"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")

    def with_overrides(self, **overrides: object) -> E2EPreset:
        """A copy with fields replaced; TrainConfig and DecodeConfig fields are accepted too."""
        train_keys = set(TrainConfig.__dataclass_fields__)
        decode_keys = set(DecodeConfig.__dataclass_fields__)
        assert not train_keys & decode_keys, "TrainConfig and DecodeConfig share a field name"
        unknown = set(overrides) - train_keys - decode_keys - set(self.__dataclass_fields__)
        if unknown:
            raise SettingsError(f"Unknown E2E settings: {sorted(unknown)}")
        train = {k: v for k, v in overrides.items() if k in train_keys}
        decode = {k: v for k, v in overrides.items() if k in decode_keys}
        rest = {k: v for k, v in overrides.items() if k not in train_keys | decode_keys}
        try:
            return replace(
                self,
                train=replace(self.train, **train),
                decode=replace(self.decode, **decode),
                **rest,
            )
        except SettingsError:
            raise
        except ValueError as err:  # TrainConfig / DecodeConfig checks
            raise SettingsError(str(err)) from None

    def to_dict(self) -> dict:
        """JSON-ready settings (nested TrainConfig and DecodeConfig as dicts).

        Fields added after records were written (``ADDED_LATER``) are left out while they
        keep their default, so that the run hash, and the name of every earlier record,
        stays the same; so are the decoding's ``algorithm``, ``ngram_scope`` and
        ``precision`` when they are the ones those records used (``LEGACY_DECODE``).
        """
        from dataclasses import asdict

        settings = asdict(self)
        for name in ADDED_LATER:
            if settings[name] == self.__dataclass_fields__[name].default:
                del settings[name]
        if all(settings["decode"][k] == v for k, v in LEGACY_DECODE.items()):
            for name in LEGACY_DECODE:
                del settings["decode"][name]
        return settings


ADDED_LATER = ("prefix_length",)  # E2EPreset fields absent from to_dict() at their default


PAPER_LR = {
    "lora": 2e-4,
    "ft": 2e-4,
    "ft_top2": 2e-4,
    "adapter_l": 2e-4,
    "adapter_h": 2e-4,
    "prefix": 2e-4,
}
CPU_LR = {
    "lora": 1e-3,
    "ft": 5e-5,
    "ft_top2": 1e-4,
    "adapter_l": 1e-3,
    "adapter_h": 1e-3,
    "prefix": 1e-3,
}
CPU_TRAIN_EXAMPLES, CPU_EPOCHS, CPU_WARMUP, CPU_EVAL_EXAMPLES = 4000, 1, 50, 400


def e2e_preset(name: str, method: str, seed: int = 0) -> E2EPreset:
    """The preset ``name`` (paper, cpu, smoke) for ``method``."""
    if method not in PAPER_LR:
        raise SettingsError(
            f"No E2E learning rate for method {method!r}: the presets know {', '.join(PAPER_LR)}"
        )
    if name == "paper":
        return E2EPreset(
            train=TrainConfig(
                epochs=5,
                lr=PAPER_LR[method],
                batch_size=8,
                eval_batch_size=16,
                weight_decay=0.01,
                warmup_steps=500,
                seed=seed,
            ),
            max_length=512,
            notes=["LoRA paper Table 11 (E2E column); other methods' lr: ours"],
        )
    if name == "cpu":
        return E2EPreset(
            train=TrainConfig(
                epochs=CPU_EPOCHS,
                lr=CPU_LR[method],
                batch_size=8,
                eval_batch_size=16,
                weight_decay=0.01,
                warmup_steps=CPU_WARMUP,
                seed=seed,
            ),
            decode=DecodeConfig(precision=cpu_precision()),
            train_examples=CPU_TRAIN_EXAMPLES,
            eval_examples=CPU_EVAL_EXAMPLES,
            notes=["ours, sized for 2 CPU cores (see lorabook.e2e.presets)"],
        )
    if name == "smoke":  # tests: seconds on a tiny model
        return E2EPreset(
            train=TrainConfig(
                epochs=1, lr=1e-3, batch_size=4, eval_batch_size=4, warmup_steps=0, seed=seed
            ),
            decode=DecodeConfig(num_beams=2, max_new_tokens=8, batch_mrs=4),
            max_length=64,
            train_examples=16,
            eval_examples=8,
            test_mrs=6,
            notes=["tests only"],
        )
    raise SettingsError(f"Unknown E2E preset {name!r}: choose one of {', '.join(PRESETS)}")
