"""The organ table: labels, partners, weights and colours are consistent with paper.md."""

from __future__ import annotations

import numpy as np
import pytest

from sepnet_core import organs


def test_labels_are_1_to_22_in_order():
    assert [o.label for o in organs.ORGANS] == list(range(1, 23))
    assert organs.NUM_CLASSES == 23


@pytest.mark.parametrize(
    ("label", "key"),
    [(1, "brain_stem"), (4, "lens_l"), (8, "optic_chiasm"), (11, "pituitary"), (20, "spinal_cord"),
     (22, "mandible_r")],
)
def test_known_labels(label, key):
    assert organs.organ_by_id(label).key == key
    assert organs.organ_by_key(key).label == label


def test_partners_are_symmetric_and_left_right():
    for organ in organs.ORGANS:
        if organ.partner is None:
            continue
        partner = organs.organ_by_id(organ.partner)
        assert partner.partner == organ.label
        assert {organ.key[-2:], partner.key[-2:]} == {"_l", "_r"}
        assert organ.weight == partner.weight


def test_lr_swap_table_is_an_involution_that_swaps_pairs():
    table = organs.lr_swap_table()
    np.testing.assert_array_equal(table[table], np.arange(23))
    assert table[0] == 0 and table[1] == 1 and table[20] == 20
    assert table[2] == 3 and table[21] == 22
    labels = np.array([[0, 2, 3, 12]])
    np.testing.assert_array_equal(table[labels], [[0, 3, 2, 13]])


def test_weights_match_paper_table():
    expected = [100, 100, 100, 50, 50, 80, 80, 50, 80, 80, 50, 50, 50, 70, 70, 70, 70, 60, 60, 100, 100, 100]
    np.testing.assert_array_equal(organs.importance_weights(), expected)


def test_colours_distinct_and_in_range():
    table = organs.colour_table()
    assert table.shape == (23, 3)
    assert np.all((table >= 0) & (table <= 1))
    assert len({tuple(row) for row in table[1:]}) == 22


@pytest.mark.parametrize("bad", [0, 23, -1, "x", None])
def test_unknown_label_raises_naming_value(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("'", ".")):
        organs.organ_by_id(bad)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match="valid keys: brain_stem"):
        organs.organ_by_key("brainstem")
