"""What LoRA costs: inference latency (Table 1), training time and memory, time to accuracy.

The paper's practical claims are about cost: no added inference latency once merged
(Section 4.1; Table 1: adapters add 20.7–30.3% at batch 1), and for GPT-3 175B (Section
4.2) 3× less training memory, a 25% training speedup, a 10,000× smaller checkpoint. This
module measures each one; the scripts in ``benchmarks/`` call it and write the records the
efficiency chapter reads.

* Latency: :func:`measure_latency` times one forward pass of several variants of the same
  model (base, LoRA merged, LoRA unmerged, adapters), *interleaved* trial by trial so that a
  change in the machine's load hits every variant alike; CUDA events on a GPU.
* Training: :func:`measure_training` runs a few AdamW steps of one method and reports the
  time per step (forward, backward, optimizer), tokens/s, peak memory and the memory by
  account: weights, gradients, optimizer state and activations (the bytes autograd saves
  for the backward pass, counted with ``saved_tensors_hooks``). ``peft_lora`` is peft's
  LoRA on the same targets, the implementation users would otherwise pick.
  ``python -m lorabook.profile train ...`` runs one measurement and prints it as JSON, so
  that each method's peak memory belongs to a fresh process (:func:`in_fresh_process`).
* Energy: :mod:`lorabook.energy` (NVML; "not measurable here" on a CPU).
* Time to equal accuracy: :func:`time_to_equal_accuracy` on the per-epoch history that
  :func:`lorabook.train.fit` stores (elapsed seconds, and joules on a GPU, at each evaluation).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from lorabook.energy import energy_meter
from lorabook.inject import lora_layers, merge_lora
from lorabook.methods import prepare_model
from lorabook.precision import autocast
from lorabook.records import peak_memory
from lorabook.train import TrainConfig, adamw

# Table 1: batch × sequence length and the adapters' trainable parameters at that shape (the
# benchmark needs them without the transcription; tests/test_profile.py reads them there).
PAPER_SHAPES: tuple[tuple[int, int], ...] = ((32, 512), (16, 256), (1, 128))
TABLE1_ADAPTER_PARAMS: dict[tuple[int, int], int] = {
    (32, 512): 500_000,
    (16, 256): 11_000_000,
    (1, 128): 11_000_000,
}
# Table 1's rows (in ../shared/paper/README.md) and the variants they time
PAPER_TABLE1_ROWS = {"Fine-tune / LoRA": "base", "AdapterL": "adapter_l", "AdapterH": "adapter_h"}
LATENCY_VARIANTS: tuple[str, ...] = (
    "base",
    "lora_merged",
    "lora_unmerged",
    "adapter_l",
    "adapter_h",
)
# The paper's GPT-2 LoRA: r = 4 on W_q and W_v, alpha = 32 (Table 11).
GPT2_LORA = {"lora_r": 4, "lora_alpha": 32}


def paper_table1_ms() -> dict[str, dict[tuple[int, int], tuple[float, float | None]]]:
    """The paper's Table 1 (ms, Quadro RTX 8000), read from the paper's transcription:
    variant -> (batch, length) -> (value, ±). The caption says "averaged over 100 trials"
    and does not say what the ± is (a standard deviation, presumably); it is returned as
    printed, ``None`` where a cell has none."""
    from lorabook import paper

    out: dict[str, dict[tuple[int, int], tuple[float, float | None]]] = {}
    for row in paper.table(1):
        label, *cells = row.items()
        by_shape = out.setdefault(PAPER_TABLE1_ROWS[label[1]], {})
        for column, cell in cells:
            batch, length, _ = (part.strip() for part in column.split("/"))
            by_shape[int(batch), int(length)] = (paper.value(cell), paper.spread(cell))
    return out


class MethodUnavailable(RuntimeError):
    """``prepare_model`` in this version cannot apply this method to this model."""


# ---------------------------------------------------------------------------------------------
# Models built from configurations (random weights: timing does not depend on their values)


def gpt2_medium_config(**overrides: object):
    """GPT-2 medium's architecture (24 layers, d = 1024, 16 heads, 50,257 tokens)."""
    from transformers import GPT2Config

    settings = {"n_embd": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 50257}
    return GPT2Config(**{**settings, **overrides})


def roberta_base_config(**overrides: object):
    """RoBERTa-base's architecture (12 layers, d = 768, 50,265 tokens), 2 labels."""
    from transformers import RobertaConfig

    settings = {
        "vocab_size": 50265,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "num_labels": 2,
    }
    return RobertaConfig(**{**settings, **overrides})


PAPER_ARCHITECTURES = ("roberta-base", "roberta-large", "gpt2-medium", "gpt2-large", "gpt3-175b")


def paper_config(kind: str):
    """The configuration of one of the paper's models (:data:`PAPER_ARCHITECTURES`): its shape,
    without building it. GPT-3 175B is a GPT-2-style configuration with its shape (96 layers,
    d = 12288, 96 heads, 2048 positions: Table 2.1 of Brown et al., 2020)."""
    shapes = {
        "roberta-large": {
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
        },
        "gpt2-large": {"n_embd": 1280, "n_layer": 36, "n_head": 20},
        "gpt3-175b": {"n_embd": 12288, "n_layer": 96, "n_head": 96, "n_positions": 2048},
    }
    if kind not in PAPER_ARCHITECTURES:
        raise ValueError(f"unknown architecture {kind!r}; known: {', '.join(PAPER_ARCHITECTURES)}")
    if kind.startswith("roberta"):
        return roberta_base_config(**shapes.get(kind, {}))
    return gpt2_medium_config(**shapes.get(kind, {}))


def paper_architecture(kind: str) -> nn.Module:
    """One of the paper's models (:data:`PAPER_ARCHITECTURES`, shaped by :func:`paper_config`)
    on the meta device (no weights, no memory): for counting parameters. Its initialisation is
    skipped (there is nothing to initialise on the meta device; GPT-3's 96 layers took seconds
    of it)."""
    import transformers as T
    from transformers.initialization import no_init_weights

    config = paper_config(kind)
    with torch.device("meta"), no_init_weights():
        if kind.startswith("roberta"):
            return T.RobertaModel(config)
        return T.GPT2Model(config)


def _tiny(arch: str) -> Callable[[], nn.Module]:
    """2-layer, d = 32 stand-ins for tests and smoke runs."""

    def build() -> nn.Module:
        import transformers as T

        if arch == "gpt2":
            return T.GPT2LMHeadModel(
                gpt2_medium_config(
                    n_embd=32, n_layer=2, n_head=2, vocab_size=97, bos_token_id=0, eos_token_id=0
                )
            )
        if arch == "roberta":
            cfg = roberta_base_config(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                vocab_size=97,
                max_position_embeddings=130,
            )
            return T.RobertaForSequenceClassification(cfg)
        cfg = T.LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            vocab_size=97,
        )
        return T.LlamaForCausalLM(cfg)

    return build


def _pretrained(name: str, causal: bool) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers as T

        from lorabook.models import resolve_model
        from lorabook.quiet import quiet

        path = resolve_model(name)
        with quiet():
            if causal:
                return T.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            return T.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    return build


def _from_config(kind: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers as T

        if kind == "gpt2-medium":
            return T.GPT2LMHeadModel(gpt2_medium_config())
        return T.RobertaForSequenceClassification(roberta_base_config())

    return build


# name -> (builder, objective: "lm" (labels = inputs) or "cls" (2 labels))
MODELS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "gpt2-medium": (_from_config("gpt2-medium"), "lm"),
    "roberta-base": (_from_config("roberta-base"), "cls"),
    "minilm": (_pretrained("minilm", causal=False), "cls"),
    "smollm2": (_pretrained("smollm2", causal=True), "lm"),
    "tiny-gpt2": (_tiny("gpt2"), "lm"),
    "tiny-roberta": (_tiny("roberta"), "cls"),
    "tiny-llama": (_tiny("llama"), "lm"),
}


def build_model(name: str, seed: int = 0) -> tuple[nn.Module, str]:
    """``(model, objective)`` for a name of :data:`MODELS`; the same seed, the same weights."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(MODELS)}")
    torch.manual_seed(seed)
    build, objective = MODELS[name]
    return build(), objective


def head_of(model: nn.Module) -> list[str]:
    """The modules every method keeps trainable: ``HEAD_MODULES`` of the model type for a
    classifier, none for a causal LM (its output layer is tied to the input embedding)."""
    from lorabook.methods import HEAD_MODULES

    return (
        list(HEAD_MODULES.get(model.config.model_type, [])) if hasattr(model, "classifier") else []
    )


# ---------------------------------------------------------------------------------------------
# Methods, ours and peft's


def peft_targets(model: nn.Module) -> list[str]:
    """peft's target modules for the paper's W_q, W_v (GPT-2: the whole fused ``c_attn``,
    which peft cannot split; it gets the same parameter count, r · (k + 3d) = 2 · r · 2d)."""
    from lorabook.inject import PAPER_TARGETS

    return list(PAPER_TARGETS[model.config.model_type]["targets"])


def apply_method(
    model: nn.Module,
    method: str,
    *,
    lora_r: int = 8,
    lora_alpha: float = 8,
    adapter_size: int = 64,
    head: Sequence[str] | None = None,
) -> tuple[nn.Module, dict]:
    """Prepare ``model`` for ``method`` (``prepare_model``'s, or ``peft_lora``); return the
    model to train (peft wraps it) and its parameter counts.

    Raises ``MethodUnavailable`` when ``prepare_model`` cannot apply the method to this model
    in this version (e.g. an adapter placement not written yet for the architecture).
    """
    head = head_of(model) if head is None else list(head)
    if method == "peft_lora":
        import peft

        config = peft.LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=peft_targets(model),
            modules_to_save=head or None,
            fan_in_fan_out=model.config.model_type == "gpt2",
        )
        wrapped = peft.get_peft_model(model, config)
        params = list(wrapped.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return wrapped, {"method": method, "trainable_incl_head": trainable}
    try:
        report = prepare_model(
            model,
            method,
            head=head,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            adapter_size=adapter_size,
        )
    except (ValueError, TypeError) as err:
        raise MethodUnavailable(f"{method} on {type(model).__name__}: {err}") from err
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, {**report.to_dict(), "trainable_incl_head": trainable}


def adapter_size_for(build: Callable[[], nn.Module], method: str, params: int) -> int:
    """The bottleneck width m that gives ``method`` about ``params`` trainable parameters
    (Table 1's adapter budgets), from two counts on a weightless (meta) copy of the model:
    adapters' parameters grow linearly in m."""
    counts = []
    for m in (1, 2):
        with torch.device("meta"):
            model = build()
        _, report = apply_method(model, method, adapter_size=m, head=[])
        counts.append(report["trainable"])
    per_m, fixed = counts[1] - counts[0], 2 * counts[0] - counts[1]
    return max(1, round((params - fixed) / per_m))


def randomize_lora(model: nn.Module, seed: int = 1) -> None:
    """Give every B a non-zero value, so that a merge really changes the weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.01)


def latency_variant(
    base: nn.Module, variant: str, adapter_params: int | None = None, build=None
) -> tuple[nn.Module, dict]:
    """A copy of ``base`` as ``variant`` (see :data:`LATENCY_VARIANTS`), in eval mode.

    ``lora_*`` use the paper's GPT-2 setting (r = 4, α = 32 on W_q, W_v); adapters get the
    width that gives ``adapter_params`` parameters (computed on ``build``'s architecture).
    Raises ``MethodUnavailable`` when this version cannot make the variant.
    """
    if variant == "base":
        return base, {"variant": variant, "trainable": 0}
    if variant in ("lora_merged", "lora_unmerged"):
        model = copy.deepcopy(base)
        torch.manual_seed(0)  # the same A in the merged and the unmerged variant
        _, report = apply_method(model, "lora", head=[], **GPT2_LORA)
        randomize_lora(model)
        if variant == "lora_merged":
            merge_lora(model)
        return model.eval(), {"variant": variant, "trainable": report["trainable"]}
    size = adapter_size_for(build, variant, adapter_params) if adapter_params else 64
    model = copy.deepcopy(base)
    _, report = apply_method(model, variant, adapter_size=size, head=[])
    return model.eval(), {
        "variant": variant,
        "trainable": report["trainable"],
        "adapter_size": size,
    }


# ---------------------------------------------------------------------------------------------
# Timing


def summarize(values: Sequence[float]) -> dict:
    """mean, std (sample), median, min, max and n of a list of measurements."""
    values = list(values)
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def overhead(variant: dict, base: dict) -> dict:
    """Latency overhead of ``variant`` against ``base`` (two :func:`summarize` dicts), in %.

    ``spread_percent`` is one standard deviation of the difference of the means,
    √(s_v²/n_v + s_b²/n_b) / mean_base · 100; ``within_noise`` says whether the
    difference is at most two of them.
    """
    diff = variant["mean"] - base["mean"]
    se = math.sqrt(variant["std"] ** 2 / variant["n"] + base["std"] ** 2 / base["n"])
    return {
        "percent": 100 * diff / base["mean"],
        "spread_percent": 100 * se / base["mean"],
        "within_noise": abs(diff) <= 2 * se,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call of ``fn``: CUDA events on a GPU, ``perf_counter`` on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    begin = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - begin)


def time_interleaved(
    calls: dict[str, Callable[[], object]], trials: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Time each call ``trials`` times after ``warmup`` untimed rounds, interleaved: round i
    runs every call once, in an order rotated by i, so slow drifts hit all alike."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(trials):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(time_call(calls[name], device))
    return times


def measure_latency(
    model_name: str,
    shapes: Sequence[tuple[int, int]],
    variants: Sequence[str] = LATENCY_VARIANTS,
    trials: int = 100,
    warmup: int = 10,
    device: str | torch.device | None = None,
    adapter_params: dict[tuple[int, int], int] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Forward-pass latency of each variant of ``model_name`` at each (batch, length) shape.

    Every variant is a copy of the same randomly initialised model. Variants this version
    cannot make are listed under ``"unavailable"`` with the reason, not silently dropped.
    Returns ``{"rows": [...], "unavailable": {...}}``; a row holds the shape, the variant,
    the trainable parameters, :func:`summarize` of the milliseconds and :func:`overhead`.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    adapter_params = TABLE1_ADAPTER_PARAMS if adapter_params is None else adapter_params
    base, _ = build_model(model_name)
    base = base.eval().to(device)
    build = MODELS[model_name][0]
    vocab = base.config.vocab_size
    rows, unavailable = [], {}
    for batch, length in shapes:
        models, info = {}, {}
        for variant in variants:
            try:
                m, i = latency_variant(base, variant, adapter_params.get((batch, length)), build)
            except MethodUnavailable as err:
                unavailable[variant] = f"not available in this version: {err}"
                continue
            models[variant], info[variant] = m.to(device), i
        ids = torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(0))
        ids = ids.to(device)

        def call(m: nn.Module, ids: torch.Tensor = ids) -> Callable[[], object]:
            def run() -> object:
                with torch.inference_mode():
                    return m(input_ids=ids)

            return run

        times = time_interleaved(
            {v: call(m) for v, m in models.items()}, trials=trials, warmup=warmup, device=device
        )
        stats = {v: summarize(t) for v, t in times.items()}
        for variant in models:
            row = {"batch": batch, "length": length, **info[variant], "ms": stats[variant]}
            if "base" in stats:
                row["overhead"] = overhead(stats[variant], stats["base"])
            rows.append(row)
            note = ""
            if "overhead" in row:
                o = row["overhead"]
                note = f"  {o['percent']:+6.1f}% ± {o['spread_percent']:.1f}"
            log(
                f"{batch:>3}×{length:<4} {variant:<14} {stats[variant]['mean']:9.2f} ± "
                f"{stats[variant]['std']:6.2f} ms{note}"
            )
        del models
    for variant, reason in unavailable.items():
        log(f"skipped {variant}: {reason}")
    return {"rows": rows, "unavailable": unavailable}


# ---------------------------------------------------------------------------------------------
# Training cost


class SavedTensorMeter:
    """Bytes autograd keeps for the backward pass while active: the activations' account.

    Counts each storage once and leaves out the parameters (they are the weights' account).
    """

    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.seen and ptr not in self.params:
            self.seen.add(ptr)
            self.bytes += storage.nbytes()
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _unique_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.numel() * t.element_size()
    return total


def memory_accounts(model: nn.Module, optimizer: torch.optim.Optimizer, activations: int) -> dict:
    """Bytes by account: weights (every parameter once), gradients (the ``.grad`` tensors),
    optimizer state (AdamW's two moments and step counters) and activations (given)."""
    params = list(model.parameters())
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    return {
        "weights": _unique_bytes(params),
        "gradients": _unique_bytes([p.grad for p in params if p.grad is not None]),
        "optimizer": _unique_bytes(state),
        "activations": activations,
    }


def checkpoint_bytes(model: nn.Module) -> int:
    """Bytes of the tensors a checkpoint of this method holds: what trains (LoRA's A and B,
    the adapters, the biases, or every weight for full fine-tuning), head included."""
    return _unique_bytes([p for p in model.parameters() if p.requires_grad])


def _rss_now() -> int | None:
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * resource.getpagesize()
    except OSError:
        return None


def _prepared(
    model_name: str,
    method: str,
    device: torch.device,
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    adapter_size: int = 64,
) -> tuple[nn.Module, torch.optim.Optimizer, Callable[[torch.Generator, int, int], dict], dict]:
    """``model_name`` with ``method`` applied, on ``device`` in training mode, its AdamW, a
    function making a random batch ``(generator, batch, length) -> inputs``, and the facts
    (params, r, alpha). LoRA's r and α default to the paper's for the architecture
    (GPT-2 r = 4, α = 32; others r = 8, α = 8)."""
    model, objective = build_model(model_name)
    gpt2 = model.config.model_type == "gpt2"
    r = lora_r or (GPT2_LORA["lora_r"] if gpt2 else 8)
    alpha = lora_alpha or (GPT2_LORA["lora_alpha"] if gpt2 else 8)
    model, report = apply_method(
        model, method, lora_r=r, lora_alpha=alpha, adapter_size=adapter_size
    )
    model.to(device).train()
    optimizer = adamw(model, TrainConfig(lr=1e-5, weight_decay=0.01))  # as the runs train
    vocab = model.config.vocab_size

    def make_batch(g: torch.Generator, batch: int, length: int) -> dict:
        ids = torch.randint(3, vocab, (batch, length), generator=g).to(device)
        if objective == "lm":
            return {"input_ids": ids, "labels": ids}
        labels = torch.randint(0, 2, (batch,), generator=g).to(device)
        return {"input_ids": ids, "labels": labels}

    return model, optimizer, make_batch, {"params": report, "lora_r": r, "lora_alpha": alpha}


def measure_training(
    model_name: str,
    method: str,
    batch: int = 8,
    length: int = 128,
    steps: int = 10,
    warmup: int = 3,
    device: str | torch.device | None = None,
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    adapter_size: int = 64,
) -> dict:
    """Train ``method`` on ``model_name`` for ``warmup + steps`` AdamW steps on random tokens
    (batch × length); time the last ``steps``, phase by phase; count memory by account.

    LoRA's r and α default to the paper's for the architecture (GPT-2 r = 4, α = 32;
    others r = 8, α = 8). Peak memory is the CUDA allocator's peak on a GPU, the process's
    peak RSS on a CPU (run it in a fresh process: :func:`in_fresh_process`).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, optimizer, batches, facts = _prepared(
        model_name, method, device, lora_r, lora_alpha, adapter_size
    )
    report, r, alpha = facts["params"], facts["lora_r"], facts["lora_alpha"]
    g = torch.Generator().manual_seed(0)

    def make_batch() -> dict:
        return batches(g, batch, length)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_start = _rss_now()
    meter = energy_meter(device)
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    # One untimed step counts the activations (the hook costs time), then warm-up and steps.
    with SavedTensorMeter(model) as saved:
        loss = model(**make_batch()).loss
    loss.backward()
    optimizer.step()
    grads = memory_accounts(model, optimizer, saved.bytes)["gradients"]
    optimizer.zero_grad(set_to_none=True)
    del loss
    accounts = {**memory_accounts(model, optimizer, saved.bytes), "gradients": grads}
    for i in range(warmup + steps):
        inputs = make_batch()
        if i == warmup:
            meter.start()
        _sync(device)
        t0 = time.perf_counter()
        loss = model(**inputs).loss
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        t3 = time.perf_counter()
        if i >= warmup:
            for name, (a, b) in zip(phases, ((t0, t1), (t1, t2), (t2, t3)), strict=True):
                phases[name].append(b - a)
    meter.stop()
    step_times = [sum(x) for x in zip(*phases.values(), strict=True)]
    peak = peak_memory(device)
    if rss_start is not None and device.type == "cpu":
        peak["bytes_over_start"] = peak["bytes"] - rss_start
    return {
        "model": model_name,
        "method": method,
        "batch": batch,
        "length": length,
        "steps": steps,
        "warmup": warmup,
        "lora_r": r if "lora" in method else None,
        "lora_alpha": alpha if "lora" in method else None,
        "adapter_size": adapter_size if method.startswith("adapter") else None,
        "params": report,
        "seconds_per_step": summarize(step_times),
        "phases_seconds": {k: statistics.fmean(v) for k, v in phases.items()},
        "tokens_per_second": batch * length / statistics.fmean(step_times),
        "peak_memory": peak,
        "memory_accounts": accounts,
        "checkpoint_bytes": checkpoint_bytes(model),
        "energy": meter.report(steps),
        "threads": torch.get_num_threads(),
        "optimizer": OPTIMIZER,
    }


def interleaved_steps(
    model_name: str,
    methods: Sequence[str] = ("lora", "peft_lora"),
    batch: int = 8,
    length: int = 128,
    steps: int = 20,
    warmup: int = 3,
    device: str | torch.device | None = None,
    precision: str = "no",
) -> dict:
    """Time whole training steps of several methods in one process, step by step in turn.

    Each round makes one random batch and trains every method on it, in alternating order
    (``AB``, ``BA``, ...), so that a change in the machine's speed hits all alike: the
    ratio of the first method's step to the second's, round by round, is a *paired*
    measurement, far less noisy than two runs in separate processes. Memory is not measured
    here (the processes' peaks would mix); :func:`measure_training` does that.
    ``precision``: every forward pass under :func:`lorabook.precision.autocast` (``"no"``:
    fp32).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prepared = {m: _prepared(model_name, m, device) for m in methods}
    g = torch.Generator().manual_seed(0)
    batches = next(iter(prepared.values()))[2]
    times: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(warmup + steps):
        inputs = batches(g, batch, length)
        for method in methods if i % 2 == 0 else list(reversed(methods)):
            model, optimizer, _, _ = prepared[method]
            _sync(device)
            t0 = time.perf_counter()
            with autocast(device, precision):
                loss = model(**inputs).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            if i >= warmup:
                times[method].append(time.perf_counter() - t0)
    a, b = methods[0], methods[1]
    paired = summarize([x / y for x, y in zip(times[a], times[b], strict=True)])
    noise = 2 * paired["std"] / math.sqrt(paired["n"])
    return {
        "model": model_name,
        "batch": batch,
        "length": length,
        "steps": steps,
        "warmup": warmup,
        "methods": list(methods),
        "precision": precision,
        "seconds_per_step": {m: summarize(t) for m, t in times.items()},
        "paired_ratio": {**paired, "noise": noise, "no_worse": paired["mean"] <= 1 + noise},
        "threads": torch.get_num_threads(),
    }


def in_fresh_process(args: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``python -m lorabook.profile <args>`` in a new process; return its JSON line.

    The child's exit status 3 means the method is unavailable for the model: the result is
    then ``{"unavailable": reason}``. Any other failure raises ``RuntimeError`` with stderr.
    """
    cmd = [sys.executable, "-m", "lorabook.profile", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 3:
        return {"unavailable": done.stdout.strip().splitlines()[-1]}
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# The optimizer every bench step takes: the training loop's (:func:`lorabook.train.adamw`). Rows
# without an ``optimizer`` field were measured before it was: PyTorch's AdamW as constructed
# by default, which on a CPU is the for-loop implementation (about ten passes over each
# tensor; the fused kernel makes one).
OPTIMIZER = "AdamW, fused (lorabook.train.adamw)"
OPTIMIZER_BEFORE = "AdamW, for-loop (PyTorch's default on a CPU)"


def _paired(
    rows: Sequence[dict], ours: str, other: str
) -> Iterator[tuple[str, int, int, dict, dict]]:
    """``(model, batch, length, our row, the other's row)`` for each shape a bench measured
    both methods at, in the rows' order."""
    by_key = {(r["model"], r["batch"], r["length"], r["method"]): r for r in rows if "method" in r}
    for (model, batch, length, method), a in by_key.items():
        b = by_key.get((model, batch, length, other))
        if method == ours and b is not None:
            yield model, batch, length, a, b


def speedup_split(rows: Sequence[dict], ours: str = "lora", base: str = "ft") -> list[dict]:
    """LoRA / FT training throughput per (model, shape), whole and in part, from the training
    bench's rows (:func:`measure_training`): ``whole step`` (the tokens/s ratio), ``forward +
    backward`` (the same ratio without the optimizer's phase: what skipping the frozen
    weights' gradients buys, the part Section 4.2 names), FT's ``optimizer share`` of its
    step, and the ``optimizer`` the rows were measured with."""
    out = []
    for model, _, _, a, b in _paired(rows, ours, base):
        pa, pb = a["phases_seconds"], b["phases_seconds"]
        passes_a, passes_b = pa["forward"] + pa["backward"], pb["forward"] + pb["backward"]
        out.append(
            {
                "model": model,
                "whole step": (passes_b + pb["optimizer"]) / (passes_a + pa["optimizer"]),
                "forward + backward": passes_b / passes_a,
                "FT optimizer share": pb["optimizer"] / (passes_b + pb["optimizer"]),
                "optimizer": b.get("optimizer", OPTIMIZER_BEFORE),
            }
        )
    return out


def peer_ratios(rows: Sequence[dict], ours: str = "lora", peer: str = "peft_lora") -> list[dict]:
    """Ours / peft per (model, shape): step time (with one standard deviation of the ratio)
    and peak memory (and peak RSS above the process's start on a CPU)."""
    out = []
    for model, batch, length, a, b in _paired(rows, ours, peer):
        sa, sb = a["seconds_per_step"], b["seconds_per_step"]
        ratio = sa["mean"] / sb["mean"]
        rel = math.sqrt(
            (sa["std"] / sa["mean"]) ** 2 / sa["n"] + (sb["std"] / sb["mean"]) ** 2 / sb["n"]
        )
        row = {
            "model": model,
            "batch": batch,
            "length": length,
            "step_time_ratio": ratio,
            "step_time_ratio_spread": ratio * rel,
            "peak_memory_ratio": a["peak_memory"]["bytes"] / b["peak_memory"]["bytes"],
            "activation_ratio": a["memory_accounts"]["activations"]
            / max(b["memory_accounts"]["activations"], 1),
        }
        if "bytes_over_start" in a["peak_memory"] and "bytes_over_start" in b["peak_memory"]:
            row["peak_over_start_ratio"] = a["peak_memory"]["bytes_over_start"] / max(
                b["peak_memory"]["bytes_over_start"], 1
            )
        out.append(row)
    return out


def peer_summary(records: Sequence[dict], tolerance: float = 0.0) -> list[dict]:
    """Ours/peft over repeated training benchmarks, per model: the ratios of each repeat,
    their mean, and whether ours is no worse than peft's within noise.

    "No worse within noise" for a ratio: its mean over the repeats is at most
    ``1 + max(2 standard errors of that mean, tolerance)``. With a single repeat, two of
    the step-time spreads that :func:`peer_ratios` computes from the steps stand in for the
    standard errors (peak memory then has no noise estimate but ``tolerance``).
    """
    by_model: dict[str, list[dict]] = {}
    for record in records:
        for row in record.get("ours_vs_peft", []):
            by_model.setdefault(row["model"], []).append(row)
    out = []
    for model, rows in by_model.items():
        summary: dict[str, object] = {"model": model, "repeats": len(rows)}
        for name, key in (("step_time", "step_time_ratio"), ("peak_memory", "peak_memory_ratio")):
            values = [r[key] for r in rows]
            mean = statistics.fmean(values)
            if len(values) > 1:
                noise = 2 * statistics.stdev(values) / math.sqrt(len(values))
            else:
                noise = 2 * rows[0].get(f"{key}_spread", 0.0)
            summary[name] = {
                "ratios": values,
                "mean": mean,
                "noise": noise,
                "no_worse": mean <= 1 + max(noise, tolerance),
            }
        out.append(summary)
    return out


# ---------------------------------------------------------------------------------------------
# Precision: fp32 against bf16 autocast, and the LM head only where the loss is (issue 17)

# The share of an E2E batch's positions whose next token is a labelled (reference) token:
# SmolLM2's tokenizer, 100 random batches of 8 of the cpu preset's 4,000 training rows:
# 214 of 627 padded positions (34%); the context (MR and separator) and padding are the rest.
E2E_LABELLED_SHARE = 0.34
E2E_LORA = {"lora_r": 4, "lora_alpha": 32}  # the E2E presets' LoRA (GLUE's: the defaults)
# name -> (autocast precision, logits): "all" = the LM head on every position (causal_lm_loss
# before issue 17), "loss" = only where the next token is labelled (causal_lm_loss now)
ARITHMETIC_NAMES = {"no": "fp32"}  # Accelerate's "no" mixed precision is plain fp32
PRECISION_VARIANTS: dict[str, tuple[str, str]] = {
    "fp32": ("no", "all"),
    "bf16": ("bf16", "all"),
    "fp32+loss-logits": ("no", "loss"),
    "bf16+loss-logits": ("bf16", "loss"),
}


def all_positions_lm_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """The E2E loss with the LM head on every position (what ``causal_lm_loss`` computed
    before it kept only the labelled positions): the "before" of the loss-only logits."""
    import torch.nn.functional as F

    from lorabook.e2e.data import IGNORE_INDEX

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1].float()
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=0.1,
    )


def e2e_like_labels(ids: torch.Tensor, g: torch.Generator, share: float) -> torch.Tensor:
    """Labels for a batch of token ids shaped like E2E's: each row's last ``share`` of the
    positions (± 4 tokens) labelled, its context before them -100."""
    from lorabook.e2e.data import IGNORE_INDEX

    length = ids.size(1)
    labels = ids.clone()
    for row in range(ids.size(0)):
        jitter = int(torch.randint(-4, 5, (1,), generator=g))
        context = min(max(length - round(share * length) + jitter, 1), length - 1)
        labels[row, :context] = IGNORE_INDEX
    return labels


def precision_steps(
    model_name: str,
    method: str,
    batch: int,
    length: int,
    variants: Sequence[str] | None = None,
    steps: int = 10,
    warmup: int = 2,
    device: str | torch.device | None = None,
    labelled_share: float = E2E_LABELLED_SHARE,
) -> dict:
    """Time training steps of one model and method in several precisions, interleaved.

    One model, one AdamW: each round makes one random batch and takes one step per variant
    (:data:`PRECISION_VARIANTS`; default: all four for a causal LM, ``fp32`` and ``bf16``
    for a classifier), in an order rotated round by round; timing does not depend on the
    weights' values, so the variants can share them. A causal LM's batch is labelled like
    E2E's (:func:`e2e_like_labels`) and trained with the E2E loss (label smoothing 0.1), its
    LM head on every position (``all``) or where the loss is (``loss``,
    :func:`lorabook.e2e.experiment.causal_lm_loss`). Tokens/s counts every position of the
    batch. Paired ratios, round by round: ``bf16`` against ``fp32`` (speed-up > 1 is faster),
    and the loss-only logits against all of them.
    """
    from lorabook.e2e.experiment import causal_lm_loss

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if model_name not in MODELS:
        raise ValueError(f"Unknown model {model_name!r}: choose one of {', '.join(MODELS)}")
    lm = MODELS[model_name][1] == "lm"
    r, alpha = (E2E_LORA["lora_r"], E2E_LORA["lora_alpha"]) if lm else (None, None)
    model, optimizer, make_batch, facts = _prepared(model_name, method, device, r, alpha)
    if variants is None:
        variants = list(PRECISION_VARIANTS) if lm else ["fp32", "bf16"]
    unknown = [v for v in variants if v not in PRECISION_VARIANTS]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}: choose among {list(PRECISION_VARIANTS)}")
    if not lm and any(PRECISION_VARIANTS[v][1] == "loss" for v in variants):
        raise ValueError(f"{model_name} is a classifier: its loss has no LM head to cut")
    g = torch.Generator().manual_seed(0)

    def step(inputs: dict, variant: str) -> float:
        precision, logits = PRECISION_VARIANTS[variant]
        _sync(device)
        t0 = time.perf_counter()
        with autocast(device, precision):
            if not lm:
                loss = model(**inputs).loss
            elif logits == "all":
                loss = all_positions_lm_loss(model, inputs)
            else:
                loss = causal_lm_loss(model, inputs, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {v: [] for v in variants}
    for i in range(warmup + steps):
        inputs = make_batch(g, batch, length)
        if lm:
            labels = e2e_like_labels(inputs["input_ids"].cpu(), g, labelled_share)
            inputs = {
                "input_ids": inputs["input_ids"],
                "attention_mask": torch.ones_like(inputs["input_ids"]),
                "labels": labels.to(device),
            }
        k = i % len(variants)
        for variant in list(variants[k:]) + list(variants[:k]):
            seconds = step(inputs, variant)
            if i >= warmup:
                times[variant].append(seconds)
    pairs = {
        "bf16_vs_fp32": ("fp32", "bf16"),
        "bf16_vs_fp32_loss_logits": ("fp32+loss-logits", "bf16+loss-logits"),
        "loss_logits_vs_all_fp32": ("fp32", "fp32+loss-logits"),
        "loss_logits_vs_all_bf16": ("bf16", "bf16+loss-logits"),
        "bf16_loss_logits_vs_fp32_all": ("fp32", "bf16+loss-logits"),
    }
    return {
        "model": model_name,
        "method": method,
        "batch": batch,
        "length": length,
        "steps": steps,
        "warmup": warmup,
        "variants": list(variants),
        "labelled_share": labelled_share if lm else None,
        "trainable_incl_head": facts["params"]["trainable_incl_head"],
        "seconds_per_step": {v: summarize(t) for v, t in times.items()},
        "tokens_per_second": {v: batch * length / statistics.fmean(t) for v, t in times.items()},
        "speedups": {
            name: paired_speedup(times[before], times[after])
            for name, (before, after) in pairs.items()
            if before in times and after in times
        },
        "threads": torch.get_num_threads(),
    }


def paired_speedup(before: Sequence[float], after: Sequence[float]) -> dict:
    """``before / after`` round by round (> 1: ``after`` is faster): :func:`summarize` of the
    ratios, and ``noise``, two standard errors of their mean."""
    ratios = summarize([b / a for b, a in zip(before, after, strict=True)])
    return {**ratios, "noise": 2 * ratios["std"] / math.sqrt(ratios["n"])}


def decode_speed(
    model: str = "smollm2",
    mrs: int = 32,
    num_beams: int = 10,
    batch_mrs: int = 32,
    rounds: int = 2,
    max_new_tokens: int = 64,
    precisions: Sequence[str] = ("no", "bf16"),
    data_dir: str | Path | None = None,
) -> dict:
    """Beam-search decoding of the first ``mrs`` unique E2E test MRs, in each precision in
    turn (rounds rotate the order), with E2E's decoding settings otherwise (length penalty
    0.9, no repeated 4-gram, ``max_new_tokens`` 64): MRs/s per precision, the paired
    speed-up of the second precision over the first, and the share of MRs that decode to
    the same text in every precision. The untuned model: speed does not depend on weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorabook.e2e.data import group_references, load_e2e
    from lorabook.e2e.decode import generate_outputs
    from lorabook.e2e.presets import DecodeConfig
    from lorabook.models import resolve_model

    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    net = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    device = next(net.parameters()).device
    unique, _ = group_references(load_e2e("test", data_dir))
    chosen = unique[:mrs]
    config = DecodeConfig(num_beams=num_beams, batch_mrs=batch_mrs, max_new_tokens=max_new_tokens)
    named = {ARITHMETIC_NAMES.get(p, p): p for p in precisions}  # "no" -> "fp32"
    names = list(named)
    times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, list[str]] = {}
    for i in range(rounds):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            with autocast(device, named[name]):
                outputs[name] = generate_outputs(net, tokenizer, chosen, config, progress=False)
            times[name].append(time.perf_counter() - t0)
    first, *rest = names
    same = sum(all(outputs[p][j] == outputs[first][j] for p in rest) for j in range(len(chosen)))
    return {
        "model": model,
        "mrs": len(chosen),
        "num_beams": num_beams,
        "batch_mrs": batch_mrs,
        "rounds": rounds,
        "max_new_tokens": max_new_tokens,
        "seconds": {p: summarize(t) for p, t in times.items()},
        "mrs_per_second": {p: len(chosen) / statistics.fmean(t) for p, t in times.items()},
        "speedup": {f"{p}_vs_{first}": paired_speedup(times[first], times[p]) for p in rest},
        "same_output_share": same / len(chosen),
        "threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------------
# Time (and energy) to equal accuracy


def _clock(history: Sequence[dict]) -> tuple[list[float], str]:
    """Seconds at each evaluation: ``elapsed_seconds`` when the history has it, else the
    cumulative ``train_seconds`` (records written before fit stored the elapsed time)."""
    if all("elapsed_seconds" in e for e in history):
        return [e["elapsed_seconds"] for e in history], "elapsed_seconds"
    total, out = 0.0, []
    for e in history:
        total += e["train_seconds"]
        out.append(total)
    return out, "cumulative train_seconds"


def time_to_equal_accuracy(
    histories: dict[str, Sequence[dict]], metric: str, margin: float = 0.005
) -> dict:
    """When each run first reaches the same dev score: the lower of the runs' best scores
    minus ``margin`` (0.005 = half a point on a 0–1 score).

    Args:
        histories: per run (e.g. ``{"ft": ..., "lora": ...}``), the per-epoch history of
            :func:`lorabook.train.fit` (a GLUE record's ``"epochs"``).
        metric: the score to compare (higher is better).
    Returns:
        ``{"target": t, "runs": {name: {"epoch", "seconds", "clock", "joules"}}}``;
        ``joules`` is ``None`` unless every evaluation up to then measured energy.
    """
    if not histories or any(not h for h in histories.values()):
        raise ValueError("time_to_equal_accuracy needs at least one evaluation per run")
    target = min(max(e[metric] for e in h) for h in histories.values()) - margin
    runs = {}
    for name, history in histories.items():
        seconds, clock = _clock(history)
        i = next(k for k, e in enumerate(history) if e[metric] >= target)
        runs[name] = {
            "epoch": history[i]["epoch"],
            "score": history[i][metric],
            "seconds": seconds[i],
            "clock": clock,
            "joules": history[i].get("energy_joules"),
        }
    return {"metric": metric, "margin": margin, "target": target, "runs": runs}


def iso_accuracy_table(
    records: Sequence[dict], methods: Sequence[str] = ("ft", "lora"), margin: float = 0.005
) -> list[dict]:
    """:func:`time_to_equal_accuracy` per task over GLUE records (the newest record per
    (task, method) when there are several); tasks missing a method are left out."""
    newest: dict[tuple[str, str], dict] = {}
    for r in records:
        key = (r["task"], r["method"])
        if key not in newest or r.get("finished_at", "") > newest[key].get("finished_at", ""):
            newest[key] = r
    rows = []
    for task in dict.fromkeys(t for t, _ in newest):
        if not all((task, m) in newest for m in methods):
            continue
        metric = newest[task, methods[0]]["metric"]
        result = time_to_equal_accuracy(
            {m: newest[task, m]["epochs"] for m in methods}, metric, margin
        )
        device = newest[task, methods[0]].get("environment", {}).get("device")
        rows.append({"task": task, **result, "device": device})
    return rows


# ---------------------------------------------------------------------------------------------
# Records


def device_kind() -> str:
    """``cuda`` or ``cpu``: the part of a benchmark record's name that says where it ran."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def write_record(path: str | Path, kind: str, settings: dict, **payload: object) -> Path:
    """Write a benchmark record atomically: kind, settings, payload, environment, time."""
    from datetime import UTC, datetime

    from lorabook.io import write_json
    from lorabook.records import environment

    record = {
        "kind": kind,
        "settings": settings,
        **payload,
        "environment": {**environment(), "torch_threads": torch.get_num_threads()},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_json(path, record)


# ---------------------------------------------------------------------------------------------
# Child-process entry point: python -m lorabook.profile train --model ... --method ...


def main(argv: Sequence[str] | None = None) -> int:
    """``train``: one :func:`measure_training` as a JSON line (exit 3: method unavailable)."""
    parser = argparse.ArgumentParser(prog="python -m lorabook.profile", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="one training measurement, JSON on stdout")
    train.add_argument("--model", required=True, choices=list(MODELS))
    train.add_argument("--method", required=True)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--length", type=int, default=128)
    train.add_argument("--steps", type=int, default=10)
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        row = measure_training(
            args.model,
            args.method,
            batch=args.batch,
            length=args.length,
            steps=args.steps,
            warmup=args.warmup,
            device=args.device,
        )
    except MethodUnavailable as err:
        print(f"not available in this version: {err}")
        return 3
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
