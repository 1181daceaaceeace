"""The data layer (numpy only): vocabularies, float tokens, expressions, the sampler, points, properties,
samples as pure functions of (seed, index), and the batch producer."""

from snipjax.data.expressions import Expression
from snipjax.data.pipeline import BatchProducer
from snipjax.data.samples import DataSpec, Sample, generate_sample, make_batch
from snipjax.data.vocab import get_vocab

__all__ = ["BatchProducer", "DataSpec", "Expression", "Sample", "generate_sample", "get_vocab", "make_batch"]
