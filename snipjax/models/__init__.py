"""Flax Linen models of SNIP: the two contrastive encoders, and the mapper + decoder of the SR release."""

from snipjax.models.encoders import AttentionPool, NumericEncoder, PointEmbedder, SymbolicEncoder, widen_point_embedder
from snipjax.models.snip import SNIP, make_numeric_encoder, make_snip, transformer_spec
from snipjax.models.sr import ExpressionDecoder, Mapper, SymbolicRegressionModel, make_next_token_logits, make_sr_model
from snipjax.models.transformer import (
    FeedForward,
    Kernels,
    MultiHeadAttention,
    Transformer,
    TransformerBlock,
    TransformerSpec,
)
