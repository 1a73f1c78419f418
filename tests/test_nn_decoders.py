import torch

from dgl_tgnn.nn import DotDecoder, MLPDecoder


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
