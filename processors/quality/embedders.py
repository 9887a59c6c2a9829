"""Text embedders for drift detection: one small interface, an offline default, two optional real models.

- `HashingEmbedder` (default): no model, no download, numpy only. Hashed word, word-bigram and character
  n-gram counts, projected to ``dim`` dimensions by a fixed seeded sparse random projection. It sees
  changes of vocabulary, template, format, length mix, numbers and language — not paraphrase-level
  meaning. Deterministic across processes and machines (no Python ``hash()``), so saved baselines stay
  valid after a restart.
- `WordLlamaEmbedder` (extra ``llm-telemetry[wordllama]``): WordLlama's static token embeddings
  (``l2_supercat``, 256 dims, 16 MB of weights inside the PyPI wheel), loaded from the installed package
  files only. Model2Vec was the other candidate; its weights come from the Hugging Face hub at first
  use, which an offline or locked-down deployment cannot do.
- `ProviderEmbedder`: the provider's embeddings API through the OpenAI SDK client the app hands over
  (instrumented like any other call, so its cost shows under feature ``quality_drift``).

Every embedder returns float32 rows of unit L2 norm (the drift kernel relies on it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llm_telemetry.attribution import attribute


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors (len(texts) x dim). Called on the drift worker only."""

    @property
    def name(self) -> str:
        """Identifies the embedding space (model and parameters): a saved baseline is only reused under the same name."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); an all-zero row becomes the constant unit vector."""
    out = np.asarray(vectors, dtype=np.float32).copy()
    norms = np.linalg.norm(out, axis=1)
    zero = norms == 0
    if zero.any():
        out[zero] = 1.0
        norms[zero] = np.sqrt(out.shape[1])
    out /= norms[:, None]
    return out


# --- hashing ---------------------------------------------------------------------------------------

_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SEP = 0  # joins the texts of a batch; never inside a feature
_CHUNK = 32


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole word (uint64 arithmetic wraps)."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX1
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX2
    return h ^ (h >> np.uint64(31))


class HashingEmbedder:
    """Offline default: hashed n-gram counts → seeded sparse random projection → unit vector.

    Features per text (lower-cased, first ``max_chars`` characters): character n-grams of the sizes in
    ``char_ngrams`` (padded with a space, so word starts and ends are their own n-grams), words (runs of
    letters/digits) and word bigrams. Each feature hashes (64-bit polynomial hash, vectorised over the
    whole batch through prefix sums) to ``nnz`` signed coordinates of the output: a sparse
    Johnson-Lindenstrauss projection of the unbounded hashed feature space, defined by ``seed`` alone,
    so no projection matrix is stored. Word features are weighted ``word_weight`` against 1 for each
    character n-gram: a few changed words then move the vector about as much as their characters do.
    """

    def __init__(
        self, dim: int = 256, *, seed: int = 0, char_ngrams: Sequence[int] = (3, 4, 5), word_weight: float = 2.0,
        nnz: int = 4, max_chars: int = 4096,
    ) -> None:
        if not 8 <= dim <= 65536:
            raise ValueError(f"dim must be between 8 and 65536, got {dim}")
        if not 1 <= nnz <= 4:
            raise ValueError(f"nnz (coordinates per feature) must be 1..4, got {nnz}")
        if not char_ngrams or any(n < 1 for n in char_ngrams):
            raise ValueError(f"char_ngrams must be positive sizes, got {tuple(char_ngrams)}")
        self._dim = dim
        self._seed = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        self._ngrams = tuple(sorted(set(char_ngrams)))
        self._word_weight = float(word_weight)
        self._nnz = nnz
        self._max_chars = max_chars
        self._name = (
            f"hashing-v1:dim={dim}:seed={seed}:char={','.join(map(str, self._ngrams))}:word={word_weight:g}:nnz={nnz}"
            f":max_chars={max_chars}"
        )
        self._pow = np.ones(1, dtype=np.uint64)
        self._pow_inv = np.ones(1, dtype=np.uint64)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if len(texts) > _CHUNK:  # small chunks keep the uint64 work arrays in cache (3x faster than one big batch)
            return np.concatenate([self._embed(texts[lo:lo + _CHUNK]) for lo in range(0, len(texts), _CHUNK)])
        return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        lowered = [" " + t[: self._max_chars].lower().replace("\x00", " ") + " " for t in texts]
        codes = np.frombuffer("\x00".join(lowered).encode("utf-32-le", "replace"), dtype=np.uint32).astype(np.uint64)
        total = len(codes)
        lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
        text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths + 1)[:total]
        powers, inverse = self._powers(total + 1)
        # prefix[k] = Σ_{j<k} c_j·B^{-j}; hash of [a, b) = (prefix[b] - prefix[a])·B^{b-1} = Σ c_j·B^{b-1-j}
        prefix = np.zeros(total + 1, dtype=np.uint64)
        np.cumsum(codes * inverse[:total], out=prefix[1:])
        separators = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(codes == _SEP, out=separators[1:])

        hashes: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for n in self._ngrams:
            if total < n:
                continue
            starts = np.arange(total - n + 1)
            ends = starts + n
            keep = separators[ends] == separators[starts]
            starts, ends = starts[keep], ends[keep]
            hashes.append(_mix((prefix[ends] - prefix[starts]) * powers[ends - 1] ^ np.uint64(n)))
            owners.append(text_of[starts])
            weights.append(np.ones(len(starts), dtype=np.float64))

        is_word = _word_chars(codes)
        edge = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
        w_starts = np.flatnonzero(edge == 1)
        w_ends = np.flatnonzero(edge == -1)
        if len(w_starts):
            words = _mix((prefix[w_ends] - prefix[w_starts]) * powers[w_ends - 1] ^ _GOLDEN)
            w_owner = text_of[w_starts]
            hashes.append(words)
            owners.append(w_owner)
            weights.append(np.full(len(words), self._word_weight))
            same = w_owner[1:] == w_owner[:-1]
            bigrams = _mix(words[:-1][same] * np.uint64(_BASE) + words[1:][same])
            hashes.append(bigrams)
            owners.append(w_owner[1:][same])
            weights.append(np.full(len(bigrams), self._word_weight))

        feature = _mix(np.concatenate(hashes) ^ self._seed) if hashes else np.zeros(0, dtype=np.uint64)
        owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        weight = np.concatenate(weights) if weights else np.zeros(0)
        signs = _mix(feature ^ _GOLDEN)
        out = np.zeros(len(texts) * self._dim, dtype=np.float64)
        base = owner * self._dim
        for k in range(self._nnz):
            column = ((feature >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.int64) % self._dim
            sign = ((signs >> np.uint64(k)) & np.uint64(1)).astype(np.float64) * 2.0 - 1.0
            out += np.bincount(base + column, weights=sign * weight, minlength=len(out))
        return normalize_rows(out.reshape(len(texts), self._dim))

    def _powers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """B^k and B^{-k} mod 2**64 for k < size (grown on demand, kept between batches)."""
        if len(self._pow) < size:
            grown = max(size, 2 * len(self._pow))
            self._pow = _power_table(_BASE, grown)
            self._pow_inv = _power_table(_BASE_INV, grown)
        return self._pow, self._pow_inv


def _power_table(base: int, size: int) -> np.ndarray:
    """[1, base, base², …] modulo 2**64 (numpy's uint64 multiply wraps)."""
    table = np.full(size, base, dtype=np.uint64)
    table[0] = 1
    return np.cumprod(table, dtype=np.uint64)


def _word_chars(codes: np.ndarray) -> np.ndarray:
    """Letters and digits: ASCII [0-9a-z] (the text is lower-cased) and non-ASCII letters, roughly (code
    points ≥ U+00C0 outside the general and CJK punctuation blocks)."""
    ascii_word = ((codes >= 48) & (codes <= 57)) | ((codes >= 97) & (codes <= 122))
    other = (codes >= 0xC0) & ~((codes >= 0x2000) & (codes <= 0x206F)) & ~((codes >= 0x3000) & (codes <= 0x303F))
    return ascii_word | other


# --- WordLlama -------------------------------------------------------------------------------------

_WORDLLAMA_DIMS = (64, 128, 256)


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` static embeddings (Matryoshka: ``dim`` 64, 128 or 256), offline.

    ``WordLlama.load()`` looks for the packaged tokenizer under ``wordllama/tokenizer/`` while the wheel
    ships it under ``wordllama/tokenizers/``, and then tries the network; so we open the two packaged
    files ourselves and never download.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim not in _WORDLLAMA_DIMS:
            raise ValueError(f"WordLlama dim must be one of {_WORDLLAMA_DIMS}, got {dim}")
        try:
            import wordllama
            from safetensors import safe_open
            from tokenizers import Tokenizer
            from wordllama.inference import WordLlamaInference
        except ImportError as exc:
            raise ImportError(
                f"the wordllama embedder needs the optional extra: pip install 'llm-telemetry[wordllama]' ({exc})"
            ) from exc
        root = Path(wordllama.__file__).parent
        weights = root / "weights" / "l2_supercat_256.safetensors"
        tokenizer = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
        for path in (weights, tokenizer):
            if not path.is_file():
                raise FileNotFoundError(f"the installed wordllama package has no {path} (wordllama {_version('wordllama')})")
        with safe_open(str(weights), framework="np", device="cpu") as f:
            table = f.get_tensor("embedding.weight")[:, :dim]
        self._model: Any = WordLlamaInference(table, Tokenizer.from_file(str(tokenizer)))
        self._dim = dim
        self._name = f"wordllama:l2_supercat:{dim}:v{_version('wordllama')}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return normalize_rows(np.asarray(self._model.embed(texts, norm=False, return_np=True)))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


# --- provider API ----------------------------------------------------------------------------------

DRIFT_FEATURE = "quality_drift"
"""The feature our own embedding calls are attributed to (their cost is real and shows in cost metrics)."""


class ProviderEmbedder:
    """The provider's embeddings API through an (instrumented) ``openai.OpenAI``-compatible client.

    ``dimensions`` is sent to the API (text-embedding-3 models shorten their vectors to it) unless
    ``send_dimensions`` is false (older models with a fixed size: set ``dimensions`` to that size). A
    reply of another size is an error, not a silent reshape. Empty texts are sent as one space (the API
    rejects empty strings). Errors propagate to the caller (the drift monitor counts and drops the batch).
    """

    def __init__(
        self, client: Any, model: str = "text-embedding-3-small", *, dimensions: int = 256, send_dimensions: bool = True,
        batch_size: int = 256,
    ) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be ≥ 1, got {dimensions}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self._client = client
        self._model = model
        self._dim = dimensions
        self._send_dimensions = send_dimensions
        self._batch = batch_size

    @property
    def name(self) -> str:
        return f"provider:{self._model}:{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for lo in range(0, len(texts), self._batch):
            chunk = [t if t.strip() else " " for t in texts[lo:lo + self._batch]]
            kwargs: dict[str, Any] = {"model": self._model, "input": chunk, "encoding_format": "float"}
            if self._send_dimensions:
                kwargs["dimensions"] = self._dim
            with attribute(feature=DRIFT_FEATURE):
                reply = self._client.embeddings.create(**kwargs)
            data = sorted(reply.data, key=lambda item: item.index)
            if len(data) != len(chunk):
                raise ValueError(f"{self.name}: asked for {len(chunk)} embeddings, got {len(data)}")
            for item in data:
                if len(item.embedding) != self._dim:
                    raise ValueError(f"{self.name}: got a {len(item.embedding)}-dimensional embedding, expected {self._dim}")
                rows.append(item.embedding)
        if not rows:
            return np.zeros((0, self._dim), dtype=np.float32)
        return normalize_rows(np.asarray(rows, dtype=np.float32))


# --- construction from a setting -------------------------------------------------------------------

_SPEC = re.compile(r"(?P<kind>hashing|wordllama|provider)(?::(?P<arg>[^:]+))?(?::(?P<dim>\d+))?")


def embedder_from_spec(spec: str, *, client: Any = None, origin: str = "embedder") -> Embedder:
    """Build an embedder from a setting value: ``hashing[:DIM]``, ``wordllama[:DIM]`` or ``provider:MODEL[:DIM]``.

    ``origin`` names where the value came from (e.g. the env var) in the error for a bad value.
    ``provider`` needs ``client`` (an OpenAI SDK client).
    """
    text = spec.strip()
    found = _SPEC.fullmatch(text)
    if not found:
        raise ValueError(f"{origin} = {spec!r}: expected hashing[:DIM], wordllama[:DIM] or provider:MODEL[:DIM]")
    kind, arg, dim_text = found["kind"], found["arg"], found["dim"]
    if kind in ("hashing", "wordllama") and arg is not None:
        if dim_text is not None or not arg.isdigit():
            raise ValueError(f"{origin} = {spec!r}: {kind} takes only a dimension, e.g. {kind}:256")
        dim_text = arg
    dim = int(dim_text) if dim_text else 256
    try:
        if kind == "hashing":
            return HashingEmbedder(dim)
        if kind == "wordllama":
            return WordLlamaEmbedder(dim)
        if not arg:
            raise ValueError("provider needs a model name, e.g. provider:text-embedding-3-small")
        if client is None:
            raise ValueError("provider embeddings need an OpenAI SDK client")
        return ProviderEmbedder(client, arg, dimensions=dim)
    except (ValueError, ImportError, FileNotFoundError) as exc:
        raise ValueError(f"{origin} = {spec!r}: {exc}") from None
