"""fastnn.recipes: every name builds what the CLI builds, the model table agrees with the
builders in fastnn.models, and bad names or shapes raise RecipeError naming what would work."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import fastnn
from fastnn import data, nn, optim, recipes
from fastnn.recipes import RecipeError
from conftest import require_digits


def test_public_names_are_documented_and_typed():
    for name in recipes.__all__:
        obj = getattr(recipes, name)
        if callable(obj):
            assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            hints = inspect.signature(obj)
            assert hints.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty for p in hints.parameters.values()), name
    assert inspect.getdoc(recipes.DatasetRecipe.augmentation)


def test_name_lists_match_the_tables():
    assert [recipes.dataset_recipe(n).name for n in recipes.DATASET_NAMES] == list(recipes.DATASET_NAMES)
    for name in recipes.OPTIMIZER_NAMES:
        assert set(recipes.optimizer_defaults(name)) == {"lr", "weight_decay"}
    assert recipes.models_for((1, 28, 28)) == list(recipes.MODEL_NAMES)  # every model takes MNIST
    assert recipes.models_for((3, 32, 32)) == list(recipes.MODEL_NAMES)  # and CIFAR
    assert recipes.models_for((1, 8, 8)) == list(recipes.MODEL_NAMES)  # and the digits (LeNet-5 pads them)


@pytest.mark.parametrize("dataset", recipes.DATASET_NAMES)
@pytest.mark.parametrize("model", recipes.MODEL_NAMES)
def test_every_model_builds_for_every_dataset(model, dataset):
    """Issue 17 item 1: every --model x --dataset pair builds and runs forward and backward
    (test_cli.py trains every model on the digits and each file format through the CLI)."""
    recipe = recipes.dataset_recipe(dataset)
    recipes.check_model(model, recipe.input_shape)
    classes = recipe.num_classes or 2  # "folder": its sub-folders name the classes, any number
    net = recipes.build_model(model, recipe.input_shape, classes)
    x = np.random.default_rng(0).random((2, *recipe.input_shape), dtype=np.float32)
    out = net(x)
    assert out.shape == (2, classes)
    net.backward(np.ones_like(out))
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("side", [1, 3, 8, 11, 12, 28, 32, 40])
def test_lenet5_pads_small_inputs(side):
    """LeNet-5 takes any size: smaller than 32 pixels, its first convolution pads up to 32 (31
    for odd sizes), so the 8x8 digits train too."""
    net = recipes.build_model("lenet5", (1, side, side), 10)
    assert net(np.zeros((3, 1, side, side), np.float32)).shape == (3, 10)
    conv = net[0]
    assert side + 2 * conv.padding[0] == (max(side, 32) if side % 2 == 0 or side > 32 else 31)


@pytest.mark.parametrize("call, fragment", [
    (lambda: recipes.dataset_recipe("imagenet"), "unknown dataset 'imagenet'; the known ones are digits, mnist"),
    (lambda: recipes.build_dataset("svhn"), "unknown dataset 'svhn'"),
    (lambda: recipes.build_model("vgg", (1, 8, 8), 10), "unknown model 'vgg'; the known ones are mlp, lenet5"),
    (lambda: recipes.build_model("mlp", (8, 8), 10), "input_shape must be one image's (channels, height, width)"),
    (lambda: recipes.build_model("mlp", (1, 0, 0), 10), "input_shape must be positive"),
    (lambda: recipes.build_model("mlp", (1, 8, 8), 0), "num_classes must be an int >= 1"),
    (lambda: recipes.build_model("simple_cnn", (1, 2, 2), 10),
     "model 'simple_cnn' needs images of at least 4x4 pixels, not 2x2; the models that take 1x2x2 images: mlp"),
    (lambda: recipes.build_model("resnet20", (3, 8, 6), 10), "needs square images, not 8x6; no model takes"),
    (lambda: recipes.optimizer_defaults("rmsprop"), "unknown optimizer 'rmsprop'; the known ones are sgd, adam, adamw"),
    (lambda: recipes.build_schedule("linear", optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1), 3, 5),
     "unknown schedule 'linear'"),
    (lambda: recipes.build_schedule("cosine", optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1), 0, 5),
     "epochs must be an int >= 1"),
])
def test_bad_names_and_shapes_raise_one_line(call, fragment):
    with pytest.raises(RecipeError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_missing_builder_is_named(monkeypatch):
    import fastnn.models

    monkeypatch.delattr(fastnn.models, "resnet")
    with pytest.raises(RecipeError, match=r"model 'resnet20' is not available in this fastnn \(fastnn.models.resnet is missing\)"):
        recipes.check_model("resnet20", (3, 32, 32))


def test_build_model_matches_the_builder_and_the_seed():
    import fastnn.models

    fastnn.manual_seed(3)
    built = recipes.build_model("resnet20", np.array([3, 16, 16]), 7)  # NumPy ints, as from x.shape
    fastnn.manual_seed(3)
    direct = fastnn.models.resnet(20, in_channels=3, num_classes=7, input_size=16)
    for (name, a), (_, b) in zip(built.state_dict().items(), direct.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert built(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 7)


@pytest.mark.parametrize("name, cls, lr, wd", [("sgd", optim.SGD, 0.05, 5e-4), ("adam", optim.Adam, 1e-3, 0.0),
                                               ("adamw", optim.AdamW, 1e-3, 0.05)])
def test_build_optimizer_defaults_and_overrides(name, cls, lr, wd):
    params = [nn.Parameter(np.zeros(3, np.float32))]
    opt = recipes.build_optimizer(name, params)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == lr and opt.param_groups[0]["weight_decay"] == wd
    opt = recipes.build_optimizer(name, iter(params), lr=0.5, weight_decay=0.25)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["weight_decay"] == 0.25
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]


def _lrs(name: str, epochs: int, steps: int, **kwargs) -> list[float]:
    opt = recipes.build_optimizer("sgd", [nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    schedule = recipes.build_schedule(name, opt, epochs, steps, **kwargs)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        if schedule is not None:
            schedule.step()
    return lrs


def test_schedules_span_the_run():
    assert recipes.build_schedule("none", optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1), 3, 4) is None
    assert _lrs("none", 3, 4) == [0.1] * 12
    cosine = _lrs("cosine", 4, 10)  # 2 warm-up steps, then down towards 0
    assert cosine[0] < cosine[2] and max(cosine) == pytest.approx(0.1) and cosine[-1] < 0.01
    onecycle = _lrs("onecycle", 4, 10)
    assert max(onecycle) == pytest.approx(0.1) and onecycle[0] < 0.01 and onecycle[-1] < 0.001
    step = _lrs("step", 6, 5, step_size=2)  # / 10 every 2 epochs
    assert step[9] == pytest.approx(0.1) and step[10] == pytest.approx(0.01) and step[20] == pytest.approx(0.001)
    assert _lrs("step", 4, 5, step_size=1, gamma=0.5)[-1] == pytest.approx(0.0125)


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 30])
def test_step_schedule_default_drops_once_at_most(epochs):
    """Issue 17 item 12: the default step schedule never collapses a short run: at most one
    drop (x0.1), halfway through; a one-epoch run keeps its learning rate."""
    lrs = _lrs("step", epochs, 4)
    assert lrs[0] == pytest.approx(0.1) and min(lrs) >= 0.01 - 1e-12
    assert (min(lrs) == pytest.approx(0.1)) == (epochs == 1)
    assert lrs[4 * recipes.default_step_size(epochs) - 1] == pytest.approx(0.1)
    assert recipes.describe_schedule("step", epochs) == (
        f"step schedule (x0.1 every {recipes.default_step_size(epochs)} epoch"
        + ("" if recipes.default_step_size(epochs) == 1 else "s") + ")")


def test_schedule_options_and_words():
    opt = recipes.build_optimizer("sgd", [nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    with pytest.raises(recipes.RecipeError, match="'step' schedule only"):
        recipes.build_schedule("cosine", opt, 3, 4, step_size=2)
    with pytest.raises(recipes.RecipeError, match="gamma must be"):
        recipes.build_schedule("step", opt, 3, 4, gamma=0)
    assert recipes.describe_schedule("none", 3) == "constant learning rate"
    assert recipes.describe_schedule("cosine", 3) == "cosine schedule"
    assert recipes.plural(1, "epoch") == "1 epoch" and recipes.plural(1438, "image") == "1,438 images"


def test_dataset_recipes_and_augmentation():
    cifar = recipes.dataset_recipe("cifar10")
    assert cifar.input_shape == (3, 32, 32) and cifar.num_classes == 10 and cifar.default_dir == "data/cifar10"
    crop, flip = cifar.augmentation()
    assert isinstance(crop, data.RandomCrop) and isinstance(flip, data.RandomHorizontalFlip)
    assert cifar.augmentation()[0] is not crop  # fresh transforms each time
    assert [type(t) for t in recipes.dataset_recipe("mnist").augmentation()] == [data.RandomCrop]


def test_build_dataset_reads_the_files_and_names_the_flag(tmp_path):
    from dataset_files import write_mnist

    write_mnist(tmp_path / "m", n_train=12, n_test=5)
    train_set, test_set = recipes.build_dataset("mnist", data_dir=tmp_path / "m")
    assert train_set.x.shape == (12, 1, 28, 28) and len(test_set) == 5
    assert train_set.x.shape[1:] == recipes.dataset_recipe("mnist").input_shape
    with pytest.raises(data.DatasetNotFoundError, match="does not exist"):
        recipes.build_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")


def test_digits_recipe_fits_every_model():
    require_digits()
    train_set, test_set = recipes.build_dataset("digits")
    shape = train_set.x.shape[1:]
    assert shape == recipes.dataset_recipe("digits").input_shape and train_set.num_classes == 10
    for name in recipes.models_for(shape):
        model = recipes.build_model(name, shape, train_set.num_classes)
        assert model(train_set.x[:2]).shape == (2, 10), name


def test_resnet_depths():
    """Issue 17 item 16: --model resnet20|32|44|56|110 are the CIFAR ResNets of those depths:
    3 stages of (depth - 2) / 6 residual blocks, two convolutions each, plus the stem and the
    classifier."""
    for depth in (20, 32, 44, 56, 110):
        net = recipes.build_model(f"resnet{depth}", (3, 32, 32), 10)
        blocks = [m for m in net if isinstance(m, nn.Sequential) and isinstance(m[0], nn.Residual)]
        assert len(blocks) == 3 * (depth - 2) // 6, depth
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs) + 1 == depth, depth  # 3x3 convolutions + the Linear classifier
