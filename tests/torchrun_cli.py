"""Launch ``python -m lorabook.glue`` (or ``lorabook.e2e``) in two real processes for the tests.

``torchrun --nproc_per_node 2 --standalone`` on the CPU (gloo), with this checkout's ``src``
first on the path and one thread a process. Run as a script (``torchrun ... torchrun_cli.py
glue <args>``) it is the program each process runs: the CLI, with one test hook,
``LORABOOK_TEST_SIGTERM_AFTER_EPOCH=<n>``: after epoch ``n``'s evaluation the main process
sends itself SIGTERM, so ``fit`` writes its checkpoint and every process stops (the real
path of an interrupted run, at a known place).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 2
SIGTERM_AFTER = "LORABOOK_TEST_SIGTERM_AFTER_EPOCH"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU and gloo, even on a machine with GPUs
    return {**env, **(extra or {})}


def torchrun(
    kind: str, args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``lorabook.<kind>``'s command line in :data:`PROCESSES` processes; the finished
    process (its output in ``stdout``, both streams together)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={PROCESSES}", __file__, kind, *args]
    return subprocess.run(
        command,
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def skip_unless_torchrun_starts() -> None:
    """Skip the test, saying why, when two gloo processes cannot start here."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not in this torch build")
    probe = (
        "import torch, torch.distributed as d; d.init_process_group('gloo'); "
        "t = torch.ones(1); d.all_reduce(t); assert t.item() == 2; d.destroy_process_group()"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={PROCESSES}", "--no-python", sys.executable, "-c", probe]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"torchrun cannot start {PROCESSES} gloo processes here: {last}")


def _main(kind: str, argv: list[str]) -> int:
    if kind == "glue":
        from lorabook.glue import experiment
        from lorabook.glue.__main__ import main
    elif kind == "e2e":
        from lorabook.e2e.__main__ import main

        return main(argv)
    else:
        raise SystemExit(f"unknown command {kind!r}; expected glue or e2e")
    stop_after = int(os.environ.get(SIGTERM_AFTER, "0"))
    if stop_after:
        keep = experiment.keep_predictions

        def keep_predictions(folder, latest):
            on_evaluated = keep(folder, latest)

            def then_sigterm(epoch: int) -> None:
                on_evaluated(epoch)
                if epoch == stop_after and os.environ.get("RANK") == "0":
                    os.kill(os.getpid(), signal.SIGTERM)

            return then_sigterm

        experiment.keep_predictions = keep_predictions
    return main(argv)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2:]))
