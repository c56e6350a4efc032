"""A sentence-transformers BERT model (all-MiniLM-L6-v2 and its kin) run with numpy alone.

The light embedder for small boards: the same weights (model.safetensors), the same tokenizer
(tokenizer.json, by the tokenizers library), mean pooling and normalization as the
sentence-transformers model, without importing torch (seconds and hundreds of MB less at
start). For one short query, a few small matrix products.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _erf(x: np.ndarray) -> np.ndarray:
    """erf, to 1.5e-7 (Abramowitz and Stegun 7.1.26): numpy has none."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.5 ** 0.5)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyBert:
    """A BERT sentence embedder from a sentence-transformers folder: embed() gives normalized
    mean-pooled vectors, as SentenceTransformer.encode(normalize_embeddings=True) does."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise ValueError(f"the numpy embedder runs BERT models; this one is {config.get('model_type')!r}")
        settings = folder / "sentence_bert_config.json"
        self.max_length = json.loads(settings.read_text()).get("max_seq_length", 256) if settings.exists() else 256
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()
                  if not k.endswith("position_ids")}
        self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}
        for key in [k for k in self.w if k.startswith("encoder.") and k.endswith(".weight") and self.w[k].ndim == 2]:
            self.w[key] = np.ascontiguousarray(self.w[key].T)     # (in, out): x @ w without a strided view
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dimensions = self.w["embeddings.word_embeddings.weight"].shape[1]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens (no special tokens)."""
        return [(int(a), int(b)) for a, b in self.tokenizer.encode(text, add_special_tokens=False).offsets]

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Normalized embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))    # like lengths together: little padding
        out = np.zeros((len(texts), self.dimensions), np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            out[chosen] = self._batch([texts[i] for i in chosen])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = [e.ids[:self.max_length - 1] + [e.ids[-1]] if len(e.ids) > self.max_length else e.ids
                     for e in self.tokenizer.encode_batch(texts)]
        length = max(len(ids) for ids in encodings)
        ids = np.zeros((len(texts), length), np.int64)
        mask = np.zeros((len(texts), length), np.float32)
        for row, tokens in enumerate(encodings):
            ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1.0
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        batch, hidden = len(texts), x.shape[-1]
        size = hidden // self.heads
        keys_mask = (1.0 - mask)[:, None, None, :] * -1e9
        for n in range(self.layers):
            p = f"encoder.layer.{n}."

            def dense(v: np.ndarray, name: str) -> np.ndarray:
                flat = v.reshape(-1, v.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return flat.reshape(*v.shape[:-1], flat.shape[-1])

            def split(v: np.ndarray) -> np.ndarray:
                return v.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q, k, v = (split(dense(x, f"attention.self.{name}")) for name in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(size ** -0.5) + keys_mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(x + dense(context, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(x + dense(inner, "output.dense"), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
