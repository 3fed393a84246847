"""The Transformer encoder--decoder (Vaswani et al., 2017), built from chapter 3's parts.

Read top to bottom:

1. masks: :func:`causal_mask` (and :func:`~course_lib.attention.padding_mask`);
2. :class:`PositionwiseFeedForward`: the same two-layer MLP applied to every token;
3. :class:`EncoderBlock`: self-attention + FFN, each with a residual connection and
   LayerNorm (post-LN as in the paper, or pre-LN with ``norm_first=True``);
4. :class:`DecoderBlock`: masked self-attention + cross-attention + FFN; its ``step``
   decodes one new position with a key-value cache (:class:`LayerCache`);
5. :class:`Seq2SeqTransformer`: embeddings (scaled by sqrt(d)) + sinusoidal positions,
   the encoder and decoder stacks, the output layer; ``encode``, ``decode``,
   ``decode_step`` (cached), ``greedy_decode`` and ``beam_search``.

Shapes: B batch, S source tokens, T target tokens, D = d_model, V vocabulary.
Masks are boolean, True = may attend / real token. Token id tensors are ``long``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_size, check_tensor, shape_str
from .attention import MultiHeadAttention, SinusoidalPositionalEncoding, padding_mask

__all__ = [
    "causal_mask",
    "padding_mask",
    "PositionwiseFeedForward",
    "EncoderBlock",
    "DecoderBlock",
    "LayerCache",
    "TransformerConfig",
    "Seq2SeqTransformer",
]


def causal_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(size, size) bool, True where query position i may attend to key position j (j <= i)."""
    size = check_size("size", size)
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2, applied to each token independently (the same
    as two 1x1 convolutions over the sequence). ``activation``: "relu" (the paper) or
    "gelu" (BERT, GPT, ViT)."""

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}"
            )
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


def _copy_ffn_and_norms(block: nn.Module, layer: nn.Module, norms: int) -> None:
    block.feed_forward.linear1.load_state_dict(layer.linear1.state_dict())
    block.feed_forward.linear2.load_state_dict(layer.linear2.state_dict())
    for i in range(1, norms + 1):
        getattr(block, f"norm{i}").load_state_dict(
            getattr(layer, f"norm{i}").state_dict()
        )


class EncoderBlock(nn.Module):
    """One encoder layer: x -> x + SelfAttention(x) -> x + FFN(x), each followed (post-LN)
    or preceded (pre-LN, ``norm_first=True``) by a LayerNorm."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first
        self.attention_weights: torch.Tensor | None = None  # (B, H, S, S) if asked for

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> torch.Tensor:
        """x (B, S, D); key_padding_mask (B, S) True at real tokens -> (B, S, D)."""

        def self_attention(h):  # (B, S, D) -> (B, S, D), keeping the weights if asked
            out, self.attention_weights = self.self_attention(
                h,
                key_padding_mask=key_padding_mask,
                attn_mask=attn_mask,
                need_weights=need_weights,
            )
            return out

        if self.norm_first:  # pre-LN: x + Sublayer(LN(x))
            x = x + self.dropout1(self_attention(self.norm1(x)))
            return x + self.dropout2(self.feed_forward(self.norm2(x)))
        # post-LN, as in the paper: LN(x + Sublayer(x))
        x = self.norm1(x + self.dropout1(self_attention(x)))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """Copy the weights of an ``nn.TransformerEncoderLayer`` of the same sizes."""
        self.self_attention.load_from_torch(layer.self_attn)
        _copy_ffn_and_norms(self, layer, norms=2)
        return self


class DecoderBlock(nn.Module):
    """One decoder layer: masked self-attention over the target so far, cross-attention to
    the encoder's output ("memory"), FFN -- each with a residual connection and LayerNorm."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (
            nn.Dropout(dropout) for _ in range(3)
        )
        self.norm_first = norm_first
        self.self_attention_weights: torch.Tensor | None = None  # (B, H, T, T)
        self.cross_attention_weights: torch.Tensor | None = None  # (B, H, T, S)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> torch.Tensor:
        """y (B, T, D), memory (B, S, D); tgt_mask (T, T) e.g. causal; padding masks
        (B, T) and (B, S), True at real tokens -> (B, T, D)."""

        def self_attention(h):  # the target attends to itself, (B, T, D)
            out, self.self_attention_weights = self.self_attention(
                h,
                key_padding_mask=tgt_key_padding_mask,
                attn_mask=tgt_mask,
                need_weights=need_weights,
            )
            return out

        def cross_attention(h):  # queries from the decoder, keys and values from memory
            out, self.cross_attention_weights = self.cross_attention(
                h,
                memory,
                memory,
                key_padding_mask=memory_key_padding_mask,
                need_weights=need_weights,
            )
            return out

        return self._sublayers(y, self_attention, cross_attention)

    def _sublayers(self, y, self_attention, cross_attention) -> torch.Tensor:
        """The three sub-layers, each inside its residual connection and LayerNorm."""
        if self.norm_first:  # pre-LN: y + Sublayer(LN(y))
            y = y + self.dropout1(self_attention(self.norm1(y)))
            y = y + self.dropout2(cross_attention(self.norm2(y)))
            return y + self.dropout3(self.feed_forward(self.norm3(y)))
        # post-LN, as in the paper: LN(y + Sublayer(y))
        y = self.norm1(y + self.dropout1(self_attention(y)))
        y = self.norm2(y + self.dropout2(cross_attention(y)))
        return self.norm3(y + self.dropout3(self.feed_forward(y)))

    def step(self, y: torch.Tensor, cache: "LayerCache") -> torch.Tensor:
        """The newest target position only, y (B, 1, D) -> (B, 1, D), equal to the last row
        of :meth:`forward` on the whole prefix with the causal mask. Its self-attention
        keys and values are appended to ``cache``; the earlier positions' are read from it,
        and the memory's keys and values were projected once, by :meth:`start_cache`."""

        def attend_to_prefix(h):  # h (B, 1, D)
            key, value = self.self_attention.project_keys_values(h, h)
            cache.keys = torch.cat([cache.keys, key], dim=2)  # (B, H, t + 1, D/H)
            cache.values = torch.cat([cache.values, value], dim=2)
            return self.self_attention.attend_to_projected(h, cache.keys, cache.values)

        def attend_to_memory(h):
            return self.cross_attention.attend_to_projected(
                h, cache.memory_keys, cache.memory_values, cache.memory_real
            )

        return self._sublayers(y, attend_to_prefix, attend_to_memory)

    def start_cache(
        self, memory: torch.Tensor, memory_real: torch.Tensor
    ) -> "LayerCache":
        """An empty cache for :meth:`step`, with the memory (B, S, D) projected to this
        layer's cross-attention keys and values -- each layer has its own W_k and W_v."""
        memory_keys, memory_values = self.cross_attention.project_keys_values(
            memory, memory
        )
        empty = memory_keys[:, :, :0]  # (B, H, 0, D/H)
        return LayerCache(empty, empty, memory_keys, memory_values, memory_real)

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerDecoderLayer) -> "DecoderBlock":
        """Copy the weights of an ``nn.TransformerDecoderLayer`` of the same sizes."""
        self.self_attention.load_from_torch(layer.self_attn)
        self.cross_attention.load_from_torch(layer.multihead_attn)
        _copy_ffn_and_norms(self, layer, norms=3)
        return self


@dataclass
class LayerCache:
    """What one decoder layer keeps between decoding steps (chapter 4's key-value cache):
    the self-attention keys and values of the t positions generated so far, and the
    cross-attention keys and values of the memory. Per head: (B, H, t or S, D/H)."""

    keys: torch.Tensor
    values: torch.Tensor
    memory_keys: torch.Tensor
    memory_values: torch.Tensor
    memory_real: torch.Tensor  # (B, S) True at real source tokens

    def follow_beams(self, parents: torch.Tensor) -> "LayerCache":
        """Beam search: row i of the new cache is row ``parents[i]`` of this one (the beam
        it extends). Beams of one sentence share the memory, so only the self-attention
        keys and values move."""
        keys, values = self.keys[parents], self.values[parents]
        return LayerCache(
            keys, values, self.memory_keys, self.memory_values, self.memory_real
        )


def _time_to_look(step: int, every: int = 8) -> bool:
    """Whether a decoding loop should read ``done`` to stop early at this step. Reading a
    GPU tensor's value waits for the GPU to finish, so the loops look once every ``every``
    steps; the steps in between only add <pad> after each finished sentence."""
    return step % every == every - 1


def _drop_padding_columns(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, L) ids -> (B, L') without the trailing columns that hold only <pad>."""
    real_columns = (tokens != pad_id).any(0).nonzero()
    return tokens[:, : int(real_columns.max()) + 1 if len(real_columns) else 0]


@dataclass
class TransformerConfig:
    """Sizes of a :class:`Seq2SeqTransformer` (defaults: a small model for a CPU)."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.1
    max_len: int = 128
    norm_first: bool = False  # False: post-LN, as in the paper
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2


class Seq2SeqTransformer(nn.Module):
    """An encoder--decoder Transformer for sequence-to-sequence tasks such as translation.

    ``forward(src, tgt_in)`` returns next-token logits (B, T, V) for teacher forcing;
    ``greedy_decode`` and ``beam_search`` generate. After a call with
    ``need_weights=True``, :meth:`attention_maps` returns every layer's weights.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.src_embedding = nn.Embedding(
            c.src_vocab_size, c.d_model, padding_idx=c.pad_id
        )
        self.tgt_embedding = nn.Embedding(
            c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id
        )
        self.positions = SinusoidalPositionalEncoding(c.d_model, c.max_len, c.dropout)
        self.encoder = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, c.norm_first)
            for _ in range(c.num_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, c.norm_first)
            for _ in range(c.num_decoder_layers)
        )
        # pre-LN stacks end with a LayerNorm (post-LN blocks already end with one)
        self.encoder_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.output = nn.Linear(c.d_model, c.tgt_vocab_size)
        # Embeddings start with coordinates of size 1/sqrt(d); times sqrt(d) they are of
        # size 1, like the coordinates of the positional encoding they are added to.
        self.embedding_scale = math.sqrt(c.d_model)
        for embedding in (self.src_embedding, self.tgt_embedding):
            nn.init.normal_(embedding.weight, std=c.d_model**-0.5)
            embedding.weight.data[c.pad_id] = 0.0

    # -- checks -------------------------------------------------------------------------
    def _check_ids(self, name: str, ids: torch.Tensor, vocab_size: int) -> None:
        check_tensor(name, ids, ndim=2, expected="(batch, tokens) of token ids")
        if ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(
                f"{name} must hold integer token ids; got dtype {ids.dtype}"
            )
        # reading the ids' values is free on the CPU; on a GPU it would stop it at every
        # step, and there the embedding's own device-side check reports a bad id
        if (
            ids.device.type == "cpu"
            and ids.numel()
            and (ids.min() < 0 or ids.max() >= vocab_size)
        ):
            raise ValueError(
                f"{name} holds token ids outside the vocabulary [0, {vocab_size}): "
                f"min {ids.min().item()}, max {ids.max().item()}"
            )
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"{name} has {ids.shape[1]} tokens but the positional table only "
                f"{self.config.max_len} (config.max_len)"
            )

    # -- the two halves -----------------------------------------------------------------
    def encode(
        self, src: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids -> memory (B, S, D) and the source padding mask (B, S)."""
        self._check_ids("src", src, self.config.src_vocab_size)
        src_real = src != self.config.pad_id
        x = self.positions(self.src_embedding(src) * self.embedding_scale)
        for block in self.encoder:
            x = block(x, key_padding_mask=src_real, need_weights=need_weights)
        return self.encoder_norm(x), src_real

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_real: torch.Tensor,
        need_weights: bool = False,
        causal: bool = True,
    ) -> torch.Tensor:
        """tgt_in (B, T) ids (starting with <bos>), memory (B, S, D) -> logits (B, T, V).

        ``causal=False`` removes the causal mask -- only to show why it is needed."""
        self._check_ids("tgt_in", tgt_in, self.config.tgt_vocab_size)
        return self._decode(tgt_in, memory, src_real, need_weights, causal)

    def _decode(self, tgt_in, memory, src_real, need_weights=False, causal=True):
        # decode without checking its arguments: greedy and beam search call it at every
        # step, on ids they made themselves
        tgt_real = tgt_in != self.config.pad_id
        mask = causal_mask(tgt_in.shape[1], tgt_in.device) if causal else None
        y = self.positions(self.tgt_embedding(tgt_in) * self.embedding_scale)
        for block in self.decoder:
            y = block(
                y,
                memory,
                tgt_mask=mask,
                tgt_key_padding_mask=tgt_real,
                memory_key_padding_mask=src_real,
                need_weights=need_weights,
            )
        return self.output(self.decoder_norm(y))

    def forward(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        need_weights: bool = False,
        causal: bool = True,
    ) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) -> logits (B, T, V)."""
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(
                f"src {shape_str(src)} and tgt_in {shape_str(tgt_in)} must have the same batch size"
            )
        memory, src_real = self.encode(src, need_weights)
        return self.decode(tgt_in, memory, src_real, need_weights, causal)

    def attention_maps(self) -> dict[str, list[torch.Tensor]]:
        """Weights of the last call with ``need_weights=True``, one (B, H, n_q, n_k) tensor
        per layer: ``encoder``, ``decoder_self`` and ``decoder_cross``."""
        return {
            "encoder": [b.attention_weights for b in self.encoder],
            "decoder_self": [b.self_attention_weights for b in self.decoder],
            "decoder_cross": [b.cross_attention_weights for b in self.decoder],
        }

    # -- generation ---------------------------------------------------------------------
    def start_cache(
        self, memory: torch.Tensor, src_real: torch.Tensor
    ) -> list[LayerCache]:
        """One empty :class:`LayerCache` per decoder layer, for :meth:`decode_step`."""
        return [block.start_cache(memory, src_real) for block in self.decoder]

    def decode_step(
        self, token: torch.Tensor, position: int, cache: list[LayerCache]
    ) -> torch.Tensor:
        """The key-value-cached decoder: the newest token (B,) at ``position`` -> logits
        (B, V) for the next one, equal to ``decode(prefix)[:, -1]`` but without
        recomputing the earlier positions (``cache`` holds them and grows by one)."""
        y = self.tgt_embedding(token[:, None]) * self.embedding_scale  # (B, 1, D)
        y = self.positions(y, start=position)
        for block, layer_cache in zip(self.decoder, cache):
            y = block.step(y, layer_cache)
        return self.output(self.decoder_norm(y))[:, 0]

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int = 40) -> torch.Tensor:
        """Generate one token at a time, always the most likely, from <bos> until every
        sentence has produced <eos> (or ``max_len`` tokens). Returns (B, L) ids without
        <bos>, padded with <pad> after each sentence's <eos>. Uses the key-value cache."""
        c = self.config
        memory, src_real = self.encode(src)
        cache = self.start_cache(memory, src_real)
        batch = src.shape[0]
        tokens = torch.full((batch, 1), c.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        for step in range(min(max_len, c.max_len - 1)):
            logits = self.decode_step(tokens[:, -1], step, cache)  # (B, V)
            next_token = logits.argmax(-1).masked_fill(done, c.pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            done |= next_token == c.eos_id
            if _time_to_look(step) and done.all():
                break
        return _drop_padding_columns(tokens[:, 1:], c.pad_id)

    @torch.no_grad()
    def beam_search(
        self,
        src: torch.Tensor,
        beam_size: int = 4,
        max_len: int = 40,
        length_penalty: float = 0.6,
    ) -> torch.Tensor:
        """Keep the ``beam_size`` best partial translations at every step; finish a beam at
        <eos>. Finished hypotheses are ranked by log-probability / length**length_penalty
        (length normalisation: without it, shorter outputs always win). Returns (B, L) ids
        like :meth:`greedy_decode`. With ``beam_size=1`` it is greedy decoding."""
        beam_size = check_size("beam_size", beam_size)
        if src.dim() == 2 and src.shape[0] == 0:
            raise ValueError(
                "src holds no sentence (batch size 0); give beam_search at least one"
            )
        c = self.config
        memory, src_real = self.encode(src)
        batch, k = src.shape[0], beam_size
        memory = memory.repeat_interleave(k, dim=0)  # (B*K, S, D)
        cache = self.start_cache(memory, src_real.repeat_interleave(k, dim=0))
        tokens = torch.full(
            (batch * k, 1), c.bos_id, dtype=torch.long, device=src.device
        )
        scores = torch.zeros(batch, k, device=src.device)
        scores[:, 1:] = -math.inf  # one live beam at first
        lengths = torch.zeros(batch, k, device=src.device)  # tokens incl. <eos>
        done = torch.zeros(batch, k, dtype=torch.bool, device=src.device)
        for step in range(min(max_len, c.max_len - 1)):
            logits = self.decode_step(tokens[:, -1], step, cache)
            log_probs = logits.log_softmax(-1)  # (B*K, V)
            vocab = log_probs.shape[-1]
            log_probs = log_probs.view(batch, k, vocab)
            # a finished beam can only be extended by <pad>, at no cost
            finished = torch.full_like(log_probs, -math.inf)
            finished[..., c.pad_id] = 0.0
            log_probs = torch.where(done[..., None], finished, log_probs)
            candidates = (scores[..., None] + log_probs).view(batch, k * vocab)
            scores, flat = candidates.topk(k, dim=-1)  # (B, K)
            parent, token = flat // vocab, flat % vocab
            rows = (torch.arange(batch, device=src.device)[:, None] * k + parent).view(
                -1
            )
            tokens = torch.cat([tokens[rows], token.view(-1, 1)], dim=1)
            cache = [layer_cache.follow_beams(rows) for layer_cache in cache]
            lengths = lengths.gather(1, parent) + (~done.gather(1, parent)).float()
            done = done.gather(1, parent) | (token == c.eos_id)
            if _time_to_look(step) and done.all():
                break
        normalised = scores / lengths.clamp(min=1) ** length_penalty
        best = normalised.argmax(-1)  # (B,)
        chosen = tokens.view(batch, k, -1)[torch.arange(batch, device=src.device), best]
        return _drop_padding_columns(chosen[:, 1:], c.pad_id)
