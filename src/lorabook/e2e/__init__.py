"""E2E NLG (the paper's Table 3): causal-LM LoRA, beam-search decoding and the official metrics.

    from lorabook.e2e.experiment import run_e2e
    record = run_e2e(method="lora", model="smollm2", preset="cpu")

``python -m lorabook.e2e --method lora ft`` runs from the command line;
``python -m lorabook.e2e.score OUTPUTS`` scores any system's output file, and
``lorabook.e2e.errors.error_counts`` counts its dropped slots, glued words and empty outputs.
"""
