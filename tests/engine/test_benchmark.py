import numpy as np

from analysis.engine import benchmark


def test_dice_of_identical_and_disjoint_masks():
    a = np.zeros((10, 10), np.float32)
    a[:5] = 1
    assert benchmark.dice(a, a) == 1.0
    assert benchmark.dice(a, 1 - a) == 0.0
    assert benchmark.dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_report_marks_missed_targets_honestly():
    tri = [
        {
            "density_pct": 8.0,
            "caliber_um": 2.0,
            "vellus": 0.01,
            "exact_density_pct": 3.0,
            "exact_caliber_um": 1.0,
            "exact_vellus": 0.02,
            "terminal": 0.02,
            "visibility": 0.01,
            "fu_1_pct": 5.0,
            "seconds": 0.5,
            "read_as_red": False,
        }
    ] * 3
    ov = [{"view": "part_line", "visibility": 0.01, "seconds": 1.0, "card": True, "scale_pct": 1.0, "part_mm": 0.2}]
    pairs = [
        {
            "planned": -0.05,
            "truth_pct": -5.0,
            "measured_pct": -5.5,
            "uncertainty_pct": 4.0,
            "significant": True,
            "comparable": True,
            "reasons": [],
        },
        {
            "planned": 0.0,
            "truth_pct": 0.0,
            "measured_pct": 0.5,
            "uncertainty_pct": 4.0,
            "significant": False,
            "comparable": True,
            "reasons": [],
        },
    ]
    dices = {"all": {"unet": [0.9], "classical": [0.5]}}
    lens = [{"density_pct": 4.0, "visibility": 0.01, "caliber_um": 3.0, "rim_found": True, "read_as_red": False}] * 2
    lens.append({"density_pct": 4.0, "visibility": 0.01, "caliber_um": 3.0, "rim_found": False, "read_as_red": True})
    shine = [{"density_pct": 12.0, "visibility": 0.01, "caliber_um": 9.0, "vellus": 0.1, "read_as_red": False}]
    red = [
        {"density_pct": 90.0, "visibility": 0.05, "caliber_um": 25.0, "vellus": 0.1, "dice": 0.05, "read_as_red": True}
    ]
    lens_pairs = [dict(pairs[0], significant=False), pairs[1]]  # the loss missed through the lens
    red_pairs = [pairs[0], dict(pairs[1], comparable=False)]
    text = benchmark.report(tri, dices, ov, pairs, 2.0, 3, 0, "test", 10.0, lens, shine, red, lens_pairs, red_pairs)
    assert "| 5% loss detected with red or auburn hair | 1.00 (1 pairs) | ≥ 0.95 | yes |" in text
    assert "| pairs judged not comparable with red or auburn hair | 0.50 | - | - |" in text
    assert "| 5% loss detected through a round lens | 0.00 (1 pairs) | ≥ 0.95 | NO |" in text
    assert "| unchanged flagged through a round lens | 0.00 (1 pairs) | ≤ 0.05 | yes |" in text
    assert "|   U-Net Dice, red and auburn hair | 0.05 | 0.05 | (none) | - |" in text
    assert "|   read as red (the network shown grey) | 1 of 1; other fields 1 of 7 | | (diagnostic) | - |" in text
    assert "| density, round-lens fields (3; rim found in 2) | 4% | 4% | ≤ 5% median, ≤ 10% p90 | yes |" in text
    assert "|   mean caliber, non-polarised fields | 9 µm | 9 µm | ≤ 5 µm | NO |" in text
    assert "| density (hairs/cm²), relative | 8% | 8% | ≤ 5% median, ≤ 10% p90 | NO |" in text
    # Measured on the exact coverage too: the error left when the network is taken out.
    assert "|   density, counted on the exact coverage | 3% | 3% | (diagnostic) | - |" in text
    assert "|   vellus fraction, on the exact coverage | 0.02 | 0.02 | (diagnostic) | - |" in text
    assert "| part width (found in 1 of 1 part-line photos) | 0.2 mm | 0.2 mm | ≤ 0.3 mm | yes |" in text
    assert "| 5% loss detected (sensitivity) | 1.00 (1 pairs) | ≥ 0.95 | yes |" in text
    # The loss pairs' own error is reported apart from the unchanged pairs' (mostly exactly 0).
    assert "|   matched-pair change, 5%-loss pairs only | 0.5 pp | 0.5 pp | (none) | - |" in text
    assert "| 5%-loss pairs whose stated uncertainty covers the truth | 1.00 | - | - |" in text
    assert "low-contrast pairs" not in text  # none of them was
    assert "caliber / visibility change" not in text  # measured before they were recorded
    pairs[1]["other_flagged"] = {"mean_caliber_um": False, "scalp_visibility": True}
    pairs[1]["low_contrast"] = True
    text = benchmark.report(tri, dices, ov, pairs, 2.0, 3, 0, "test", 10.0, lens, shine, red, lens_pairs, red_pairs)
    assert (
        "|   low-contrast pairs (their own noise): 5% loss detected / unchanged flagged | "
        "nan (0 pairs) / 0.00 (1 pairs) | (diagnostic) | - |"
    ) in text
    assert "| unchanged flagged as a caliber / visibility change | 0.00 / 1.00 (1 pairs) | (none) | - |" in text


def test_graph_topology_finds_missed_and_split_hairs():
    from analysis.engine import metrics

    from .conftest import lines_coverage

    cov = lines_coverage([(20, 100, 180, 100), (100, 20, 100, 180)], width=6)
    lines = [np.array([[20.0, 100.0], [180.0, 100.0]]), np.array([[100.0, 20.0], [100.0, 180.0]])]
    lines = [np.linspace(a[0], a[1], 80) for a in lines]
    g = metrics.build_hair_graph(cov, 0.01)
    assert benchmark.graph_topology(g, lines, cov.shape) == {"hairs": 2, "missed": 0, "split": 0, "stray": 0}
    cov[:, 40:52] = 0  # the horizontal hair now shows as two pieces
    far = np.linspace([10.0, 10.0], [10.0, 60.0], 20)  # a true hair the coverage does not show
    g = metrics.build_hair_graph(cov, 0.01)
    assert benchmark.graph_topology(g, lines + [far], cov.shape) == {"hairs": 3, "missed": 1, "split": 1, "stray": 0}


def test_a_benchmark_field_photographed_through_a_round_lens_has_its_rim_found(segmenter):
    rows = benchmark.photo_variant_errors(1, 0, segmenter, aperture=lambda i: 1.1)
    assert rows[0]["rim_found"] and rows[0]["visibility"] < 0.03
    plain = benchmark.photo_variant_errors(1, 0, segmenter, shine=lambda i: 0.0)
    assert "rim_found" not in plain[0] and set(plain[0]) >= {"density_pct", "caliber_um", "vellus", "dice"}
    assert plain[0]["dice"] > 0.8


def test_the_hair_colour_separation_counts_what_is_read_as_red():
    text = benchmark.hair_colour_separation(2)
    assert "| black, brown, blonde, grey | 2 |" in text
    assert "| red or auburn | 2 |" in text and text.rstrip().endswith("| 2 |")  # both red fields read as red


def test_fields_only_reports_the_field_rows_of_the_chosen_seeds():
    text = benchmark.fields_only(2, 100)
    assert text.startswith("2 trichoscopy fields from seed 100")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = [r.split(" | ")[0].strip("| ").strip() for r in rows]
    assert names[0] == "density, relative" and names[-3:] == ["mean caliber", "vellus fraction", "scalp visibility"]
    clipped, unclipped = (int(n.split("(")[1].rstrip(")")) for n in names[1:3])
    assert names[1].startswith("density, clipped") and clipped + unclipped == 2
    values = (float(r.split(" | ")[1].replace("%", "").replace(" µm", "")) for r in rows)
    medians = dict(zip(names, values, strict=True))
    assert 0 <= medians["density, relative"] < 200
    # Half the fields are at least as far off as a signed median, so it cannot exceed the unsigned one.
    assert abs(medians["density, signed (measured - true)"]) <= medians["density, relative"]
    exact = medians["density, counted on the exact coverage"]
    assert abs(medians["density on the exact coverage, signed"]) <= exact


def test_tracking_tells_a_measurement_that_ignores_the_truth_from_one_that_follows_it():
    truth = [0.3, 0.4, 0.5, 0.6, 0.7]
    assert benchmark._tracking([(t, t + 0.01) for t in truth]) == "slope 1.00, correlation 1.00"
    flat = benchmark._tracking([(t, 0.5 + 0.02 * (-1) ** i) for i, t in enumerate(truth)])
    slope, corr = (float(x.split()[-1]) for x in flat.split(", "))
    assert abs(slope) < 0.1 and abs(corr) < 0.3
    assert benchmark._tracking([(0.5, 0.4), (0.5, 0.6), (0.5, 0.5)]) == "no spread to compare"


def test_noise_is_taken_over_the_pairs_of_one_contrast_or_all():
    errors = [(False, 1.0), (False, -1.0), (True, 6.0), (True, -8.0)]
    assert benchmark._class_rms(errors, False) == 1.0
    assert benchmark._class_rms(errors, True) == round(np.sqrt(50), 3)
    assert benchmark._class_rms(errors, None) == round(np.sqrt(102 / 4), 3)
    assert benchmark._class_rms([(False, 1.0)], True) is None
