"""A CPU-bound load beside a benchmark: an embedded model generating, as llama.cpp workers do in production.

`inference_load()` starts `python -m sloflow.bench.load` in its own process (its own cores, as a
worker actor would have), waits until the model decodes, and stops it when the block ends.
Latency figures are then measured twice in one run: on a quiet machine and under this load.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import Iterator

from sloflow.bench.progress import say
from sloflow.processes import stop

_READY = "decoding"


@contextlib.contextmanager
def inference_load(model: str = "smollm2-135m", threads: int = 1) -> Iterator[None]:
    """Keep `threads` cores busy with an embedded model generating until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sloflow.bench.load", "--model", model, "--threads", str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the model has loaded and started decoding
        if _READY not in line:
            raise RuntimeError(f"the load process did not start (exit code {proc.poll()}); is {model} installed?")
        say(f"  load: {model} generating on {threads} thread(s) beside the benchmark")
        yield
    finally:
        stop(proc, timeout_s=10)


def _generate_forever(model: str, threads: int) -> None:
    from llama_cpp import Llama

    from sloflow.config import get_settings
    from sloflow.llm.models import model_path

    llm = Llama(str(model_path(model, get_settings().home / "models")), n_threads=threads, n_ctx=1024, verbose=False)
    first = True
    while True:
        for _ in llm.create_completion("Count from 1 to 1000: 1, 2, 3,", max_tokens=512, temperature=0, stream=True):
            if first:
                print(_READY, flush=True)
                first = False


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sloflow.bench.load")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    try:
        _generate_forever(opts.model, opts.threads)
    except KeyboardInterrupt:
        pass
