"""The training loop and the plotting helpers."""

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from course_lib import data, plot, train


def make_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    return x, y, batches


def mse_loss(model, batch):
    x, y = batch
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    return loss, {"mse": loss}


def test_fit_learns_a_linear_map_and_logs_everything():
    torch.manual_seed(0)
    x, y, batches = make_problem()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train.fit(
        model,
        opt,
        batches,
        mse_loss,
        epochs=20,
        progress=False,
        evaluate=lambda m: {"val_mse": ((m(x).squeeze(-1) - y) ** 2).mean()},
    )
    assert len(history.steps) == 20 * 8
    assert len(history.evals) == 20 and history.evals[-1]["val_mse"] < 1e-4
    assert history.steps[-1]["mse"] == pytest.approx(history.steps[-1]["loss"])
    torch.testing.assert_close(
        model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=1e-2, rtol=0
    )
    assert history.seconds > 0
    fig = history.plot(metrics=["val_mse"])
    assert len(fig.axes) == 2


def test_the_closing_summary_fits_a_printed_page_and_keeps_every_reading(capsys):
    x, y, batches = make_problem()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    names = ["knn_accuracy", "entropy", "p_positive", "test_pretext_accuracy"]
    train.fit(
        model,
        opt,
        batches,
        mse_loss,
        epochs=1,
        progress=True,
        evaluate=lambda m: {n: 0.123456 * (i + 1) for i, n in enumerate(names)},
    )
    summary = capsys.readouterr().out.strip().splitlines()
    summary = summary[next(i for i, l in enumerate(summary) if " steps in " in l) :]
    assert len(summary) > 1 and all(len(line) <= 60 for line in summary), summary
    joined = " ".join(line.strip() for line in summary)
    assert joined.startswith("8 steps in ") and "final loss" in joined
    for i, name in enumerate(names):
        assert f"{name} {0.123456 * (i + 1):.4g}" in joined


def test_fit_stops_after_the_given_steps_and_steps_the_scheduler():
    _, _, batches = make_problem()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + step))
    history = train.fit(
        model,
        opt,
        batches,
        mse_loss,
        steps=5,
        scheduler=sched,
        progress=False,
        evaluate=lambda m: {"zero": 0.0},
        eval_every=2,
    )
    assert len(history.steps) == 5
    assert [round(r["lr"], 4) for r in history.steps] == [
        0.5,
        0.3333,
        0.25,
        0.2,
        0.1667,
    ]
    # every 2 steps, then at the end of the epoch
    assert [e["step"] for e in history.evals] == [
        2,
        4,
        5,
    ]


def test_a_step_budget_runs_over_as_many_epochs_as_it_needs():
    x, y, _ = make_problem()
    model = nn.Linear(3, 1)
    batches = data.shuffled_batches((x, y), 100, torch.Generator().manual_seed(0))
    assert len(batches) == 3  # 100 + 100 + 56
    history = train.fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        batches,
        mse_loss,
        steps=10,
        progress=False,
    )
    assert len(history.steps) == 10 and history.steps[-1]["epoch"] == 4


def test_a_one_shot_generator_cannot_serve_a_second_epoch():
    _, _, batches = make_problem()
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="one-shot iterator"):
        train.fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            (b for b in batches),
            mse_loss,
            steps=20,
            progress=False,
        )
    # one epoch is fine
    history = train.fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        (b for b in batches),
        mse_loss,
        progress=False,
    )
    assert len(history.steps) == 8


def test_shuffled_batches_cover_everything_once_per_pass_in_a_new_order():
    x = torch.arange(10)
    labels = [f"item {i}" for i in range(10)]
    batches = data.shuffled_batches((x, labels), 4, torch.Generator().manual_seed(0))
    first, second = list(batches), list(batches)
    assert [len(b[0]) for b in first] == [4, 4, 2]
    for epoch in (first, second):
        seen = torch.cat([b[0] for b in epoch])
        assert sorted(seen.tolist()) == list(range(10))
        assert [f"item {i}" for i in seen.tolist()] == [s for b in epoch for s in b[1]]
    assert not torch.equal(
        torch.cat([b[0] for b in first]), torch.cat([b[0] for b in second])
    )
    assert [len(b) for b in data.shuffled_batches(x, 4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="same length"):
        data.shuffled_batches((x, labels[:5]), 4)
    with pytest.raises(ValueError, match="batch_size"):
        data.shuffled_batches(x, 0)


def test_fit_restores_train_mode_and_evaluates_without_grad():
    _, _, batches = make_problem()
    model = nn.Sequential(nn.Linear(3, 1), nn.Dropout(0.5))
    seen = {}

    def evaluate(m):
        seen["training"], seen["grad"] = m.training, torch.is_grad_enabled()
        return {}

    train.fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        batches[:1],
        mse_loss,
        progress=False,
        evaluate=evaluate,
    )
    assert seen == {"training": False, "grad": False}
    assert model.training


def test_fit_reports_a_diverging_loss():
    _, _, batches = make_problem()
    model = nn.Linear(3, 1)
    with pytest.raises(FloatingPointError, match="step 1"):
        train.fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            batches,
            lambda m, b: torch.tensor(float("nan"), requires_grad=True),
            progress=False,
        )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(model="not a model"), TypeError, "model must be a torch.nn.Module"),
        (dict(optimizer=None), TypeError, "optimizer must be"),
        (dict(epochs=0), ValueError, "epochs must be a positive integer"),
        (dict(steps=2.5), ValueError, "steps must be a positive integer"),
        (dict(max_seconds=0), ValueError, "max_seconds must be positive"),
        (dict(batches=[]), ValueError, "no batch"),
    ],
)
def test_fit_bad_arguments(kwargs, error, message):
    _, _, batches = make_problem()
    model = nn.Linear(3, 1)
    args = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        batches=batches,
        loss_fn=mse_loss,
        progress=False,
    )
    args.update(kwargs)
    with pytest.raises(error, match=message):
        train.fit(**args)


def test_fit_rejects_a_non_scalar_loss():
    _, _, batches = make_problem()
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="scalar"):
        train.fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            batches,
            lambda m, b: m(b[0]),
            progress=False,
        )


def test_to_device_moves_nested_tensors():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.ones(1)]), "name": "a"}
    moved = train.to_device(batch, "cpu")
    assert moved["name"] == "a" and isinstance(moved["pair"], tuple)


@pytest.mark.parametrize(
    "shape, panels", [((4, 5), 1), ((3, 4, 5), 3), ((2, 3, 4, 5), 6)]
)
def test_show_heatmaps_draws_one_panel_per_matrix(shape, panels):
    fig = plot.show_heatmaps(torch.rand(shape))
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == panels
    assert images[0].images[0].get_array().shape == shape[-2:]


def test_show_heatmaps_bad_inputs():
    with pytest.raises(ValueError, match=r"weights must have shape \(n_q, n_k\)"):
        plot.show_heatmaps(torch.rand(5))
    with pytest.raises(ValueError, match="titles must have one entry per heatmap"):
        plot.show_heatmaps(torch.rand(2, 3, 3), titles=["only one"])


def test_plot_lines_checks_shapes():
    ax = plot.plot_lines([1, 2, 3], {"a": [1, 2, 3], "b": [3, 2, 1]}, logy=True)
    assert len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="curve 'c' has shape"):
        plot.plot_lines([1, 2, 3], {"c": [1, 2]})
    plt.close("all")


@pytest.mark.parametrize(
    "diagram, words",
    [
        ("transformer_diagram", ["encoder × N", "decoder × N", "memory"]),
        ("vit_diagram", ["[class]", "position\nembeddings"]),
        ("detr_diagram", ["N object queries (learned)", "∅ (no object)"]),
        ("moco_diagram", ["queue of K negative keys", "view 2 of x"]),
    ],
)
def test_architecture_diagrams_draw_their_parts_inside_the_axes(diagram, words):
    fig = getattr(plot, diagram)()
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    for word in words:
        assert any(word in t for t in texts), (word, texts)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    for patch in ax.patches:  # every box is on the canvas
        box = patch.get_bbox()
        assert x0 <= box.x0 and box.x1 <= x1 and y0 <= box.y0 and box.y1 <= y1, patch
    plt.close(fig)
