import torch

from dgl_tgnn.nn import DotDecoder, MLPDecoder, PairScorer
from dgl_tgnn.nn.decoders import _CHUNK_FLOATS


def test_mlp_decoder_is_an_mlp_on_the_concatenation() -> None:
    torch.manual_seed(0)
    decoder = MLPDecoder(4)
    z_src, z_dst = torch.randn(6, 4), torch.randn(6, 4)
    logits = decoder(z_src, z_dst)
    assert logits.shape == (6,) and logits.dtype == torch.float32
    w1 = torch.cat([decoder.src_hidden.weight, decoder.dst_hidden.weight], dim=1)  # [4, 8]
    for i in range(6):
        hidden = torch.relu(w1 @ torch.cat([z_src[i], z_dst[i]]) + decoder.src_hidden.bias)
        expected = decoder.out.weight[0] @ hidden + decoder.out.bias[0]
        torch.testing.assert_close(logits[i], expected)


def test_decoders_broadcast_sources_over_negatives() -> None:
    torch.manual_seed(0)
    z_src, z_neg = torch.randn(3, 1, 4), torch.randn(3, 5, 4)
    for decoder in (MLPDecoder(4), DotDecoder()):
        logits = decoder(z_src, z_neg)
        assert logits.shape == (3, 5)
        for b in range(3):
            torch.testing.assert_close(logits[b], decoder(z_src[b].expand(5, 4), z_neg[b]))


def test_dot_decoder() -> None:
    z_src = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    z_dst = torch.tensor([[3.0, -1.0], [2.0, 4.0]])
    torch.testing.assert_close(DotDecoder()(z_src, z_dst), torch.tensor([1.0, -3.0]))


def test_score_table_in_chunks_equals_the_decoder_on_each_pair() -> None:
    """Large tables are scored a few sources at a time (``_CHUNK_FLOATS``): the values are the
    decoder's on each (source, table row) pair, gradients included, and an empty batch gives [0, C]."""
    torch.manual_seed(0)
    decoder = MLPDecoder(100)
    z_src = torch.randn(25, 100, requires_grad=True)
    table = torch.randn(700, 100)
    index = torch.randint(0, 700, (25, 3000))
    assert 25 * 3000 * 100 > 2 * _CHUNK_FLOATS  # several chunks
    logits = decoder.score_table(z_src, table, index)
    assert logits.shape == (25, 3000)
    expected = decoder(z_src[:, None, :].expand(-1, 3000, -1), table[index])
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-5)
    (grad,) = torch.autograd.grad(logits.sum(), z_src)
    (want,) = torch.autograd.grad(expected.sum(), z_src)
    torch.testing.assert_close(grad, want, atol=1e-4, rtol=1e-4)
    assert decoder.score_table(z_src[:0], table, index[:0]).shape == (0, 3000)


def test_pair_scorer_in_chunks_equals_its_mlp_on_all_pairs() -> None:
    torch.manual_seed(0)
    scorer = PairScorer(18)
    features = torch.randn(40, 1000, 18)
    assert features.shape[0] * features.shape[1] * scorer.hidden > 2 * _CHUNK_FLOATS  # several chunks
    logits = scorer(features)
    assert logits.shape == (40, 1000)
    w = [m for m in scorer.mlp if isinstance(m, torch.nn.Linear)]
    hidden = torch.relu(features @ w[0].weight.T + w[0].bias)
    hidden = torch.relu(hidden @ w[1].weight.T + w[1].bias)
    torch.testing.assert_close(logits, (hidden @ w[2].weight.T + w[2].bias).squeeze(-1), atol=1e-5, rtol=1e-5)
    assert scorer(features[:0]).shape == (0, 1000)
