"""model.summary() and num_parameters() (issue 17, item 13)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import models, nn


def test_num_parameters_counts_each_shared_parameter_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), shared, shared)
    assert model.num_parameters() == (3 * 4 + 4) + (4 * 4 + 4)
    assert models.lenet5().num_parameters() == 61_706  # LeNet-5's classic count for 28x28 input
    bn = nn.BatchNorm2d(8)
    assert bn.num_parameters() == 16 and bn.num_parameters(include_buffers=True) == 32


def test_summary_lists_layers_output_shapes_and_counts_like_keras():
    model = models.lenet5()
    lines: list[str] = []
    text = model.summary((1, 28, 28), print_fn=lines.append)
    assert lines == [text]
    rows = text.splitlines()
    assert rows[0] == 'Model: "Sequential"'
    assert rows[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    table = [r for r in rows if r[:1].isdigit()]
    assert len(table) == len(model)
    assert table[0].split() == ["0", "(Conv2d)", "(N,", "6,", "28,", "28)", "156"]
    assert table[6].split() == ["6", "(Flatten)", "(N,", "400)", "0"]
    assert table[-1].split() == ["11", "(Linear)", "(N,", "10)", "850"]
    assert "Total params: 61,706" in rows and "Trainable params: 61,706" in rows
    assert "Non-trainable params: 0" in rows


def test_summary_counts_running_statistics_as_non_trainable_and_leaves_the_model_alone():
    model = models.resnet(20)
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    text = model.summary((3, 32, 32), print_fn=None)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert np.array_equal(v, before[k]), k
    assert f"Total params: {model.num_parameters(include_buffers=True):,}" in text
    assert f"Trainable params: {model.num_parameters():,}" in text
    assert "Non-trainable params: 1,568" in text  # 19 BatchNorm2d layers' running mean and var
    assert "12 (GlobalAvgPool2d)  (N, 64)" in text
    rows = [r for r in text.splitlines() if r[:1].isdigit()]
    assert sum(int(r.split()[-1].replace(",", "")) for r in rows) == model.num_parameters(include_buffers=True)


def test_summary_of_a_single_layer_and_a_wrong_input_shape():
    text = nn.Linear(3, 4).summary((3,), print_fn=None)
    assert "Linear" in text and "(N, 4)" in text and "Total params: 16" in text
    with pytest.raises(ValueError, match="Linear"):
        models.lenet5().summary((1, 32, 32), print_fn=None)
