from myoimg import labels


def test_label_table_matches_shared_vocabulary():
    expected = {1: "R_VL", 2: "R_VM", 3: "R_VI", 4: "R_RF", 5: "L_VL", 6: "L_VM", 7: "L_VI", 8: "L_RF"}
    assert {m.id: m.name for m in labels.QUADRICEPS} == expected
    assert all(m.id >= 11 for m in labels.MUSCLES if not m.is_quadriceps)
    assert labels.label_id("L_RF") == 8 and labels.label_name(3) == "R_VI"
    assert len({m.id for m in labels.MUSCLES}) == len(labels.MUSCLES)


def test_colours_are_valid_rgb():
    for rgb in labels.colour_table().values():
        assert all(0.0 <= c <= 1.0 for c in rgb)
