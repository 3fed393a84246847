"""Chapter 4: blocks equal to PyTorch's layers, masks, decoding, data, bad inputs."""

import pytest
import torch
from torch import nn

from course_lib import data, train
from course_lib.transformer import (
    DecoderBlock,
    EncoderBlock,
    PositionwiseFeedForward,
    Seq2SeqTransformer,
    TransformerConfig,
    causal_mask,
    padding_mask,
)

D, H, FF = 32, 4, 64


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_equals_pytorch(norm_first, activation):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        D,
        H,
        FF,
        dropout=0.0,
        batch_first=True,
        norm_first=norm_first,
        activation=activation,
    ).eval()
    ours = (
        EncoderBlock(
            D, H, FF, dropout=0.0, norm_first=norm_first, activation=activation
        )
        .load_from_torch(theirs)
        .eval()
    )
    x = torch.randn(3, 7, D)
    real = padding_mask(torch.tensor([7, 4, 6]), 7)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(x, key_padding_mask=real),
            theirs(x, src_key_padding_mask=~real),
            atol=1e-5,
            rtol=1e-5,
        )
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_pytorch(norm_first):
    torch.manual_seed(1)
    theirs = nn.TransformerDecoderLayer(
        D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    ours = (
        DecoderBlock(D, H, FF, dropout=0.0, norm_first=norm_first)
        .load_from_torch(theirs)
        .eval()
    )
    y, memory = torch.randn(3, 5, D), torch.randn(3, 6, D)
    tgt_real = padding_mask(torch.tensor([5, 3, 4]), 5)
    src_real = padding_mask(torch.tensor([6, 2, 5]), 6)
    with torch.no_grad():
        out = ours(
            y,
            memory,
            tgt_mask=causal_mask(5),
            tgt_key_padding_mask=tgt_real,
            memory_key_padding_mask=src_real,
        )
        ref = theirs(
            y,
            memory,
            tgt_mask=~causal_mask(5),
            tgt_key_padding_mask=~tgt_real,
            memory_key_padding_mask=~src_real,
        )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_feed_forward_is_a_1x1_convolution():
    torch.manual_seed(2)
    ffn = PositionwiseFeedForward(D, FF)
    conv1, conv2 = nn.Conv1d(D, FF, 1), nn.Conv1d(FF, D, 1)
    with torch.no_grad():
        (
            conv1.weight.copy_(ffn.linear1.weight[:, :, None]),
            conv1.bias.copy_(ffn.linear1.bias),
        )
        (
            conv2.weight.copy_(ffn.linear2.weight[:, :, None]),
            conv2.bias.copy_(ffn.linear2.bias),
        )
    x = torch.randn(2, 9, D)
    torch.testing.assert_close(
        ffn(x),
        conv2(torch.relu(conv1(x.transpose(1, 2)))).transpose(1, 2),
        atol=1e-5,
        rtol=1e-5,
    )


def test_causal_mask():
    assert causal_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    with pytest.raises(ValueError, match="size must be a positive integer"):
        causal_mask(0)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = TransformerConfig(
        src_vocab_size=11,
        tgt_vocab_size=13,
        d_model=32,
        num_heads=4,
        d_ff=64,
        dropout=0.0,
        max_len=20,
        **overrides,
    )
    return Seq2SeqTransformer(config).eval()


def test_decoder_does_not_see_the_future():
    model = tiny_model()
    src = torch.randint(4, 11, (2, 6))
    tgt = torch.randint(4, 13, (2, 8))
    changed = tgt.clone()
    changed[:, 5:] = torch.randint(4, 13, (2, 3))
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
        torch.testing.assert_close(a[:, :5], b[:, :5])  # positions < 5 unaffected
        c, d = model(src, tgt, causal=False), model(src, changed, causal=False)
    assert not torch.allclose(c[:, :5], d[:, :5])  # without the mask they are


def test_padding_does_not_change_the_real_tokens():
    model = tiny_model()
    src = torch.tensor([[5, 6, 7, 2]])
    padded = torch.tensor([[5, 6, 7, 2, 0, 0, 0]])
    tgt = torch.tensor([[1, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(
            model(src, tgt), model(padded, tgt), atol=1e-5, rtol=1e-5
        )


def test_attention_maps_have_one_tensor_per_layer():
    model = tiny_model(num_encoder_layers=2, num_decoder_layers=3)
    with torch.no_grad():
        model(
            torch.randint(4, 11, (2, 6)),
            torch.randint(4, 13, (2, 5)),
            need_weights=True,
        )
    maps = model.attention_maps()
    assert [m.shape for m in maps["encoder"]] == [(2, 4, 6, 6)] * 2
    assert [m.shape for m in maps["decoder_self"]] == [(2, 4, 5, 5)] * 3
    assert [m.shape for m in maps["decoder_cross"]] == [(2, 4, 5, 6)] * 3


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decode_step_equals_decoding_the_whole_prefix(norm_first):
    model = tiny_model(norm_first=norm_first, num_decoder_layers=3)
    src = torch.randint(4, 11, (3, 6))
    src[1, 4:] = 0  # padding in the source
    tgt = torch.randint(4, 13, (3, 7))
    tgt[:, 0] = 1
    with torch.no_grad():
        memory, src_real = model.encode(src)
        full = model.decode(tgt, memory, src_real)  # (B, T, V)
        cache = model.start_cache(memory, src_real)
        stepped = torch.stack(
            [model.decode_step(tgt[:, t], t, cache) for t in range(7)], dim=1
        )
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)
    assert [c.keys.shape for c in cache] == [(3, 4, 7, 8)] * 3  # (B, H, t, D/H)


def uncached_greedy(model, src, max_len):
    """Greedy decoding the slow way: decode the whole prefix again at every step."""
    memory, src_real = model.encode(src)
    tokens = torch.ones(len(src), 1, dtype=torch.long)
    done = torch.zeros(len(src), dtype=torch.bool)
    for _ in range(max_len):
        next_token = model.decode(tokens, memory, src_real)[:, -1].argmax(-1)
        next_token = next_token.masked_fill(done, 0)
        tokens = torch.cat([tokens, next_token[:, None]], 1)
        done |= next_token == 2
    return tokens[:, 1:]


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_greedy_decoding_equals_the_uncached_loop(seed):
    model = tiny_model(seed)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 11, (8, 6), generator=g)
    with torch.no_grad():
        reference = uncached_greedy(model, src, max_len=12)
    cached = model.greedy_decode(src, max_len=12)
    width = cached.shape[1]
    assert torch.equal(cached, reference[:, :width])
    assert torch.all(reference[:, width:] == 0)  # only <pad> was dropped


def uncached_beam_scores(model, src, beam_size, max_len):
    """Beam search the slow way (the whole prefix decoded again at every step, one
    sentence at a time, no length normalisation): the best log-probability per sentence."""
    best = []
    for sentence in src:
        memory, src_real = model.encode(sentence[None])
        beams = [([1], 0.0)]  # (tokens, log-probability)
        finished = []
        for _ in range(max_len):
            prefixes = torch.tensor([tokens for tokens, _ in beams])
            log_probs = model.decode(
                prefixes,
                memory.expand(len(beams), -1, -1),
                src_real.expand(len(beams), -1),
            )[:, -1].log_softmax(-1)
            candidates = [
                (tokens + [word], score + log_probs[i, word].item())
                for i, (tokens, score) in enumerate(beams)
                for word in range(log_probs.shape[1])
            ]
            candidates.sort(key=lambda c: -c[1])
            beams = []
            for tokens, score in candidates[: beam_size - len(finished)]:
                (finished if tokens[-1] == 2 else beams).append((tokens, score))
            if not beams:
                break
        best.append(max(score for _, score in finished + beams))
    return torch.tensor(best)


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_beam_search_finds_the_uncached_beams_best(seed):
    model = tiny_model(seed)
    with torch.no_grad():
        model.output.bias[2] = -1e4  # no <eos>: every beam runs max_len steps
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 11, (4, 5), generator=g)
    with torch.no_grad():
        expected = uncached_beam_scores(model, src, beam_size=3, max_len=6)
        out = model.beam_search(src, beam_size=3, max_len=6, length_penalty=0.0)
        tgt_in = torch.cat([torch.ones(len(out), 1, dtype=torch.long), out[:, :-1]], 1)
        log_probs = model(src, tgt_in).log_softmax(-1).gather(2, out[..., None])
    torch.testing.assert_close(log_probs.squeeze(-1).sum(-1), expected)


def copy_task_model():
    """A model trained for a few seconds to copy its input: decoding must then work."""
    torch.manual_seed(0)
    config = TransformerConfig(
        src_vocab_size=10,
        tgt_vocab_size=10,
        d_model=32,
        num_heads=2,
        d_ff=64,
        dropout=0.0,
        max_len=16,
        num_encoder_layers=1,
        num_decoder_layers=1,
    )
    model = Seq2SeqTransformer(config)
    g = torch.Generator().manual_seed(0)

    def batches():
        out = []
        for _ in range(10):
            lengths = torch.randint(1, 6, (64,), generator=g)
            words = torch.randint(4, 10, (64, 6), generator=g)
            src = torch.where(torch.arange(6) < lengths[:, None], words, 0)
            src = torch.cat([src, torch.zeros(64, 1, dtype=torch.long)], 1)
            src[torch.arange(64), lengths] = 2  # <eos>
            tgt_in = torch.cat([torch.ones(64, 1, dtype=torch.long), src[:, :-1]], 1)
            tgt_in = torch.where(tgt_in == 2, 0, tgt_in)
            out.append((src, tgt_in, src))
        return out

    loss = nn.CrossEntropyLoss(ignore_index=0)
    train.fit(
        model,
        torch.optim.Adam(model.parameters(), lr=3e-3),
        batches,
        lambda m, b: loss(m(b[0], b[1]).flatten(0, 1), b[2].flatten()),
        epochs=30,
        progress=False,
    )
    return model.eval()


@pytest.fixture(scope="module")
def copier():
    return copy_task_model()


def test_greedy_decoding_copies_and_stops_at_eos(copier):
    src = torch.tensor([[5, 7, 9, 2, 0], [8, 2, 0, 0, 0]])
    out = copier.greedy_decode(src, max_len=10)
    assert out[0, :4].tolist() == [5, 7, 9, 2]
    assert out[1, :2].tolist() == [8, 2]
    assert torch.all(out[1, 2:] == 0)  # <pad> after <eos>
    assert out.shape[1] <= 4  # stopped once every row ended


@pytest.mark.parametrize("method", ["greedy_decode", "beam_search"])
def test_decoding_checks_its_input_once_not_at_every_step(copier, method, monkeypatch):
    calls = []
    check = copier._check_ids
    monkeypatch.setattr(copier, "_check_ids", lambda *a: calls.append(a) or check(*a))
    src = torch.tensor([[5, 7, 9, 6, 2]])
    out = getattr(copier, method)(src, max_len=20)
    assert out.shape[1] >= 4  # it took several decoding steps
    assert [name for name, *_ in calls] == ["src"]


def test_beam_search_with_beam_one_equals_greedy(copier):
    g = torch.Generator().manual_seed(5)
    src = torch.randint(4, 10, (16, 5), generator=g)
    src[:, -1] = 2
    torch.testing.assert_close(
        copier.beam_search(src, beam_size=1), copier.greedy_decode(src)
    )


def test_beam_search_never_scores_worse_than_greedy(copier):
    g = torch.Generator().manual_seed(6)
    src = torch.randint(4, 10, (16, 5), generator=g)
    src[:, -1] = 2

    def log_prob(output):
        tgt_in = torch.cat(
            [torch.ones(len(output), 1, dtype=torch.long), output[:, :-1]], 1
        )
        with torch.no_grad():
            lp = (
                copier(src, tgt_in)
                .log_softmax(-1)
                .gather(2, output[..., None])
                .squeeze(-1)
            )
        return (lp * (output != 0)).sum(-1)

    # no length normalisation
    beam = copier.beam_search(src, beam_size=4, length_penalty=0.0)
    greedy = copier.greedy_decode(src)
    width = max(beam.shape[1], greedy.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    assert torch.all(log_prob(pad(beam)) >= log_prob(pad(greedy)) - 1e-4)


def test_bad_inputs_give_clear_errors():
    model = tiny_model()
    with pytest.raises(
        ValueError, match=r"src has 25 tokens but the positional table only 20"
    ):
        model.encode(torch.full((1, 25), 5))
    with pytest.raises(
        ValueError, match=r"src holds token ids outside the vocabulary \[0, 11\)"
    ):
        model.encode(torch.tensor([[5, 11]]))
    with pytest.raises(TypeError, match="src must hold integer token ids"):
        model.encode(torch.rand(1, 3))
    with pytest.raises(ValueError, match="same batch size"):
        model(torch.full((2, 3), 5), torch.full((3, 3), 5))
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        model.beam_search(torch.full((1, 3), 5), beam_size=0)


def test_number_translation_data():
    task = data.make_number_translation(
        n_train=300, n_test=50, n_valid=20, max_number=5000, small_numbers=100, seed=0
    )
    train_numbers = {s for s, _ in task.train_pairs}
    # held out
    assert not train_numbers & {s for s, _ in task.test_pairs + task.valid_pairs}
    assert len(task.test_pairs) == 50 and len(task.valid_pairs) == 20
    assert ("seventy-one", "soixante et onze") in task.train_pairs + task.test_pairs
    for english, french in task.train_pairs[:50]:
        assert data.detokenize(data.tokenize(french)) == french
        assert data.detokenize(data.tokenize(english)) == english
    src, tgt_in, tgt_out = task.batches(task.train_pairs, 16)[0]
    assert (tgt_in[:, 0] == data.Vocab.BOS).all()
    torch.testing.assert_close(
        tgt_in[:, 1:],
        torch.where(tgt_out[:, :-1] == data.Vocab.EOS, 0, tgt_out[:, :-1]),
    )
    back = task.decode_target(tgt_out)
    assert back == [t for _, t in task.train_pairs[:16]]
    with pytest.raises(ValueError, match="must not exceed max_number"):
        data.make_number_translation(n_train=90, n_test=20, n_valid=0, max_number=100)


def test_a_task_smaller_than_the_small_numbers_samples_them_all():
    task = data.make_number_translation(
        n_train=200, n_test=20, n_valid=0, small_numbers=1000, seed=0
    )
    from num2words import num2words

    values = {s: n for n in range(1000) for s in [num2words(n)]}
    drawn = [values[s] for s, _ in task.train_pairs + task.test_pairs]
    assert max(drawn) > 900 and min(drawn) < 100  # spread over 0-999, not the first 220


def test_the_hard_test_kinds_are_kept_out_of_training():
    from num2words import num2words

    task = data.make_number_translation(
        n_train=2000, n_test=100, n_valid=50, max_number=100_000, n_hard=30, seed=1
    )
    hard = task.hard_test_pairs
    assert {k: len(v) for k, v in hard.items()} == {
        "unseen combination": 30,
        "longer output": 30,
        "beyond the range": 30,
    }
    seen = task.train_pairs + task.valid_pairs + task.test_pairs
    longest = max(len(data.tokenize(t)) for _, t in seen)
    assert longest <= data.LONGEST_TRAINING_TARGET
    assert all(len(data.tokenize(t)) > longest for _, t in hard["longer output"])
    # "seven hundred and thirteen"
    endings = {num2words(n) for n in data.UNSEEN_ENDINGS}
    assert not any(s.endswith(tuple(endings)) for s, _ in seen)
    assert all(s.endswith(tuple(endings)) for s, _ in hard["unseen combination"])
    # 100 000 and more: "... hundred ... thousand"
    for english, _ in hard["beyond the range"]:
        assert "hundred" in english.split(" thousand")[0], english
    assert (
        len({p for pairs in hard.values() for p in pairs} | set(seen)) == len(seen) + 90
    )


@pytest.mark.parametrize(
    "n", [0, 1, 17, 80, 100, 201, 1000, 1001, 80_080, 97_797, 999_999]
)
def test_french_length_counts_the_words_of_num2words(n):
    from num2words import num2words

    assert data._french_length(n) == len(data.tokenize(num2words(n, lang="fr")))


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    cosine = train.warmup_cosine(opt, warmup_steps=2, total_steps=10)
    rates = []
    for _ in range(11):
        rates.append(opt.param_groups[0]["lr"])
        opt.step(), cosine.step()
    assert (
        rates[0] == pytest.approx(1.0)
        and rates[1] == pytest.approx(2.0)
        and rates[10] == pytest.approx(0.0)
    )
