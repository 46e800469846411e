"""fastnn.tasks: the binary relabelling, the attribute tables and CSV reader, the open-set split,
verification pairs and the identification gallery, each against an independent statement of
what it must give (counts, set relations, brute-force enumeration), seeded runs repeating
exactly, and every bad input naming its argument and flag."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

from fastnn import nn, tasks
from fastnn.data import ArrayDataset, DataLoader


def _dataset(per_class: int = 3, num_classes: int = 10, classes: list[str] | None = None) -> ArrayDataset:
    y = np.repeat(np.arange(num_classes), per_class)
    x = np.random.default_rng(0).random((len(y), 1, 4, 4), dtype=np.float32)
    x[:, 0, 0, 0] = np.arange(len(y))  # each image says which row it came from
    return ArrayDataset(x, y, classes)


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _untyped(function) -> bool:
    signature = inspect.signature(function)
    return signature.return_annotation is inspect.Signature.empty or any(
        p.annotation is inspect.Parameter.empty for p in signature.parameters.values())


def test_public_names_are_documented_and_typed():
    public = {name: getattr(tasks, name) for name in tasks.__all__}
    assert [name for name, obj in public.items() if callable(obj) and not inspect.getdoc(obj)] == []
    assert [name for name, obj in public.items() if inspect.isfunction(obj) and _untyped(obj)] == []


# Binary ----------------------------------------------------------------------------------------

def test_binary_task_by_names_and_ids():
    data = _dataset(classes=CIFAR_NAMES)
    binary = tasks.binary_task(data, ["bird", "cat", 4, "dog", "frog", 7, "cat"])  # the animals; a repeat is fine
    animals = np.isin(data.y, [2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(binary.y, animals.astype(np.int64))
    assert binary.classes == ["no", "yes"] and binary.x is data.x
    assert tasks.positive_names(CIFAR_NAMES, [7, "bird"]) == ["bird", "horse"]


def test_binary_task_digit_names_are_their_ids():
    data = _dataset()
    np.testing.assert_array_equal(tasks.binary_task(data, ["3", 5]).y, np.isin(data.y, [3, 5]).astype(np.int64))


@pytest.mark.parametrize("positive,fragment", [
    (["dog", "unicorn"], "names the unknown class 'unicorn'; the classes are: airplane, automobile, bird"),
    ([10], "must hold class names or ids in [0, 10); got 10"),
    ([-1], "got -1"),
    ([], "must name at least one class"),
    ("dog", "must be a list of class ids or names"),
    (list(range(10)), "names every class"),
])
def test_binary_task_errors_name_the_flag(positive, fragment):
    with pytest.raises(ValueError) as info:
        tasks.binary_task(_dataset(classes=CIFAR_NAMES), positive)
    assert "--positive" in str(info.value) and fragment in str(info.value)


# Attribute tables ------------------------------------------------------------------------------

def test_digit_attributes_follow_their_definitions():
    data = _dataset(per_class=2)
    task = tasks.attribute_task(data, "digits")
    assert task.names == ["even", "prime", "at_least_5", "closed_loops"]
    assert task.head_spec == {"even": "binary", "prime": "binary", "at_least_5": "binary", "closed_loops": 3}
    digit = data.y.astype(np.float32)
    np.testing.assert_array_equal(task.targets[:, 0], digit % 2 == 0)
    np.testing.assert_array_equal(task.targets[:, 1], np.isin(digit, [2, 3, 5, 7]))
    np.testing.assert_array_equal(task.targets[:, 2], digit >= 5)
    loops = {0: 1, 6: 1, 9: 1, 8: 2}  # every other digit, 4 included, has none
    np.testing.assert_array_equal(task.targets[:, 3], [loops.get(int(d), 0) for d in digit])
    np.testing.assert_array_equal(task.labels, data.y)
    x, t = task[np.array([0, 17])]
    assert x.shape == (2, 1, 4, 4) and t.shape == (2, 4)
    assert tasks.attribute_specs("mnist") == task.specs
    # The loader's int64 batches hold the table exactly (every entry is a whole number).
    _, batch = next(iter(DataLoader(task, batch_size=20, prefetch=0)))
    np.testing.assert_array_equal(batch, task.targets)


@pytest.mark.parametrize("name,facts", [
    ("fashion-mnist", {"footwear": (9, 1), "upper_body": (1, 0), "long_sleeves": (0, 0), "group": (8, 3)}),
    ("cifar10", {"has_wheels": (9, 1), "animal": (0, 0), "can_fly": (2, 1), "group": (3, 1)}),
])
def test_other_tables_build_and_hold_their_facts(name, facts):
    # (class, value) facts read off the datasets' class lists: ankle boots are footwear,
    # trousers are not upper body, bags are group 3; trucks have wheels, birds fly, cats are mammals.
    data = _dataset(per_class=1)
    task = tasks.attribute_task(data, name)
    for attribute, (label, value) in facts.items():
        assert task.targets[label, task.names.index(attribute)] == value, (attribute, label)
    assert [s.kind for s in task.specs] == ["binary", "binary", "binary", "multiclass"]


def test_table_errors():
    with pytest.raises(ValueError, match=r"\(--dataset\) has no built-in attribute table: 'cifar100'; the datasets "
                                         r"with one are digits, mnist, fashion-mnist, cifar10"):
        tasks.attribute_task(_dataset(), "cifar100")
    with pytest.raises(ValueError, match=r"must have the 10 classes of digits; got 4"):
        tasks.attribute_task(_dataset(num_classes=4), "digits")


@pytest.mark.parametrize("call,fragment", [
    (lambda: tasks.AttributeSpec("a", "ordinal", ("x", "y")), "'binary' or 'multiclass'"),
    (lambda: tasks.AttributeSpec("a", "binary", ("x",)), "must name 2 values"),
    (lambda: tasks.AttributeSpec("a", "multiclass", ("x",)), "at least 2 values"),
    (lambda: tasks.AttributeSpec("", "binary", ("x", "y")), "non-empty string"),
    (lambda: tasks.AttributeDataset(np.zeros((2, 1, 2, 2)), np.array([[0], [2]]),
                                    [tasks.AttributeSpec("a", "binary", ("no", "yes"))]),
     "value id in [0, 2) of the binary attribute 'a'; got 2.0 in row 1, column 0"),
    (lambda: tasks.AttributeDataset(np.zeros((2, 1, 2, 2)), np.zeros((2, 2)),
                                    [tasks.AttributeSpec("a", "binary", ("no", "yes"))]),
     "must have shape (2, 1)"),
])
def test_spec_and_dataset_errors(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_multi_head_model_on_a_classifier_trunk():
    from fastnn import models

    classifier = models.mlp(1, 10, 4, hidden=(8,))
    model = tasks.multi_head_model(classifier, tasks.attribute_specs("digits"))
    assert model[0][0] is classifier[0]  # the trunk is shared, not copied
    out = model(np.zeros((3, 1, 4, 4), np.float32))
    assert {k: v.shape for k, v in out.items()} == {"even": (3, 1), "prime": (3, 1), "at_least_5": (3, 1),
                                                     "closed_loops": (3, 3)}


# CSV -------------------------------------------------------------------------------------------

def _csv(tmp_path, text: str):
    path = tmp_path / "attributes.csv"
    path.write_text(text)
    return path


def test_read_attribute_csv(tmp_path):
    path = _csv(tmp_path, "image,smiling,hair,glasses\n3,1,2,\n0, 0 ,,1\n\n4,,0,0.0\n")
    specs, targets = tasks.read_attribute_csv(path, ["0", "1", "2", "3", "4"])
    assert [(s.name, s.kind, s.outputs) for s in specs] == [("smiling", "binary", 1), ("hair", "multiclass", 3),
                                                              ("glasses", "binary", 1)]
    expected = np.array([[0, -1, 1], [-1, -1, -1], [-1, -1, -1], [1, 2, -1], [-1, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(targets, expected)
    data = _dataset(per_class=1, num_classes=5)
    assert tasks.image_ids(data) == ["0", "1", "2", "3", "4"]
    task = tasks.AttributeDataset(data.x, targets, specs)
    assert len(task) == 5 and task.subset(np.array([3])).targets.tolist() == [[1, 2, -1]]


@pytest.mark.parametrize("text,fragment", [
    ("", "the file is empty"),
    ("image\n0\n", "row 1: the header must name an id column and at least one attribute"),
    ("0,1,0\n1,0,1\n", "row 1: missing header: the first row holds numbers"),
    ("image,a,a\n0,1,0\n", "row 1, column 3: attribute 'a' appears twice"),
    ("image,a,\n0,1,0\n", "row 1, column 3: attribute names must be non-empty"),
    ("image,a\n", "no data rows after the header"),
    ("image,a,b\n0,1\n", "row 2: expected 3 cells (an id and 2 attributes), got 2"),
    ("image,a\n0,1\n7,0\n", "row 3, column 1: unknown image id '7'; the dataset's 3 images have ids such as '0', '1', '2'"),
    ("image,a\n0,1\n1,0\n0,1\n", "row 4, column 1: image id '0' repeats row 2"),
    ("image,a,b\n0,1,0\n1,yes,1\n", "row 3, column 2 ('a'): 'yes' is not a whole number >= 0"),
    ("image,a,b\n0,1,0\n1,0,-1\n", "row 3, column 3 ('b'): '-1' is not a whole number >= 0"),
    ("image,a,b\n0,1,0.5\n", "row 2, column 3 ('b'): '0.5' is not a whole number"),
    ("image,a\n0,nan\n", "row 2, column 2 ('a'): 'nan' is not a whole number"),
])
def test_read_attribute_csv_errors_name_file_row_and_column(tmp_path, text, fragment):
    path = _csv(tmp_path, text)
    with pytest.raises(ValueError) as info:
        tasks.read_attribute_csv(path, ["0", "1", "2"])
    assert str(path) in str(info.value) and fragment in str(info.value)


# Open-set split --------------------------------------------------------------------------------

def test_open_set_split_holds_out_the_last_40_percent():
    data = _dataset(classes=CIFAR_NAMES)
    split = tasks.open_set_split(data)
    np.testing.assert_array_equal(split.eval_classes, [6, 7, 8, 9])
    np.testing.assert_array_equal(split.train_classes, [0, 1, 2, 3, 4, 5])
    assert split.train.classes == CIFAR_NAMES[:6] and split.heldout.classes == CIFAR_NAMES
    # The images' row marks say where they came from: their original labels, remapped.
    rows = split.train.x[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(split.train_classes[split.train.y], data.y[rows])
    held_rows = split.heldout.x[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(split.heldout.y, data.y[held_rows])
    assert sorted(np.concatenate([rows, held_rows]).tolist()) == list(range(len(data)))


def test_open_set_split_by_names_remaps_the_rest():
    data = _dataset(classes=CIFAR_NAMES)
    split = tasks.open_set_split(data, ["cat", 0])
    np.testing.assert_array_equal(split.eval_classes, [0, 3])
    assert split.train.classes == ["automobile", "bird", "deer", "dog", "frog", "horse", "ship", "truck"]
    again = tasks.open_set_split(data, [3, "airplane"])
    np.testing.assert_array_equal(again.train.y, split.train.y)
    assert list(tasks.default_eval_classes(100)) == list(range(60, 100))
    assert list(tasks.default_eval_classes(4)) == [2, 3]


@pytest.mark.parametrize("classes,eval_classes,fragment", [
    (10, [5], "must hold out at least 2 of the 10 classes and leave at least 2 to train on; got 1 held out (5)"),
    (3, None, "got 2 held out (1, 2), 1 to train on"),
    (10, list(range(9)), "9 held out"),
    (10, ["eleven"], "unknown class 'eleven'"),
])
def test_open_set_split_errors_name_the_flag(classes, eval_classes, fragment):
    with pytest.raises(ValueError) as info:
        tasks.open_set_split(_dataset(num_classes=classes), eval_classes)
    assert "--eval-classes" in str(info.value) and fragment in str(info.value)


# Verification pairs ----------------------------------------------------------------------------

def _unordered(i, j):
    return {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}


@pytest.mark.parametrize("num_pairs", [2, 7, 40])
def test_verification_pairs_are_balanced_distinct_and_correct(num_pairs):
    labels = np.random.default_rng(1).integers(0, 6, 50)
    i, j, same = tasks.verification_pairs(labels, num_pairs, seed=3)
    assert i.dtype == j.dtype == np.int64 and same.dtype == bool and len(i) == num_pairs
    np.testing.assert_array_equal(same, labels[i] == labels[j])
    assert same.sum() == num_pairs // 2
    assert not (i == j).any() and len(_unordered(i, j)) == num_pairs


def test_verification_pairs_repeat_under_a_seed():
    labels = np.repeat(np.arange(5), 6)
    first = tasks.verification_pairs(labels, 20, seed=4)
    for a, b in zip(first, tasks.verification_pairs(labels, 20, seed=4)):
        np.testing.assert_array_equal(a, b)
    other = tasks.verification_pairs(labels, 20, seed=5)
    assert _unordered(*first[:2]) != _unordered(*other[:2])


def test_asking_for_every_pair_gives_every_pair():
    # Brute force: all unordered same and different pairs of a small, unsorted label list.
    labels = np.array([2, 0, 2, 1, 0, 2])
    all_pairs = list(itertools.combinations(range(len(labels)), 2))
    same_pairs = {p for p in all_pairs if labels[p[0]] == labels[p[1]]}
    diff_pairs = set(all_pairs) - same_pairs
    assert len(same_pairs) == 4 and len(diff_pairs) == 11
    i, j, same = tasks.verification_pairs(labels, 8, seed=0)
    assert _unordered(i[same], j[same]) == same_pairs
    assert _unordered(i[~same], j[~same]) <= diff_pairs
    with pytest.raises(ValueError, match=r"asks for 5 same-class and 5 different-class pairs; these 6 images have 4 "
                                         r"and 11 \(at most 9 pairs\)"):
        tasks.verification_pairs(labels, 10)


@pytest.mark.parametrize("labels,num_pairs,fragment", [
    (np.zeros(5, np.int64), 2, "at least 2 classes"),
    (np.arange(4), 2, "asks for 1 same-class"),  # no class has two images
    (np.arange(4), 1, "(--pairs) must be an int >= 2; got 1"),
    (np.arange(4.0), 2, "1-D array of integer class ids"),
    (np.zeros((2, 2), np.int64), 2, "got shape (2, 2)"),
])
def test_verification_pairs_errors(labels, num_pairs, fragment):
    with pytest.raises(ValueError) as info:
        tasks.verification_pairs(labels, num_pairs)
    assert fragment in str(info.value)


# Identification --------------------------------------------------------------------------------

def test_identification_split_enrolls_k_per_known_identity():
    labels = np.random.default_rng(2).permutation(np.repeat(np.arange(8), [4, 5, 6, 4, 7, 4, 5, 9]))
    split = tasks.identification_split(labels, enroll=3, unknown_classes=2, seed=1)
    assert len(split.enrolled) == 6
    enrolled_counts = np.bincount(labels[split.gallery], minlength=8)
    np.testing.assert_array_equal(enrolled_counts[split.enrolled], 3)
    unknown = np.setdiff1d(np.arange(8), split.enrolled)
    assert enrolled_counts[unknown].sum() == 0  # never enrolled: all their images are probes
    np.testing.assert_array_equal(np.sort(np.concatenate([split.gallery, split.probes])), np.arange(len(labels)))
    assert np.isin(unknown, labels[split.probes]).all()
    again = tasks.identification_split(labels, enroll=3, unknown_classes=2, seed=1)
    for a, b in zip(split, again):
        np.testing.assert_array_equal(a, b)
    other = tasks.identification_split(labels, enroll=3, unknown_classes=2, seed=2)
    assert not np.array_equal(split.gallery, other.gallery)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"enroll": 4}, "(--enroll) is 4, but identity 0 has only 4 images; each enrolled identity needs 4 + 1"),
    ({"enroll": 0}, "(--enroll) must be an int >= 1; got 0"),
    ({"enroll": 1, "unknown_classes": 3}, "(--unknown-classes) must leave at least one of the 3 identities enrolled"),
    ({"enroll": 1, "unknown_classes": -1}, "(--unknown-classes) must be an int >= 0"),
])
def test_identification_split_errors(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        tasks.identification_split(np.repeat(np.arange(3), 4), **kwargs)
    assert fragment in str(info.value)


def test_tasks_import_no_new_kernels():
    # The task data must not need the metric-learning layers being built alongside it.
    assert hasattr(nn, "MultiHeadLoss")
