"""Preprocessing of one slice on known inputs (pure functions)."""

import numpy as np
import pytest

from tocsin.models.imaging import preprocess as pp
from tocsin.models.imaging.preprocess import NormTable, PreprocessError


def test_to_hu_applies_slope_and_intercept():
    stored = np.array([[0, 1024], [2048, -10]], np.int16)
    hu = pp.to_hu(stored, 1.0, -1024.0)
    assert hu.dtype == np.float32
    np.testing.assert_array_equal(hu, [[-1024, 0], [1024, -1034]])
    np.testing.assert_array_equal(pp.to_hu(np.array([100], np.uint16), 0.5, -1000), [-950])


def test_window_maps_range_to_unit_interval_and_clips():
    hu = np.array([-2000, -1350, -600, 150, 3000], np.float32)
    np.testing.assert_allclose(pp.window(hu, -600, 1500), [0, 0, 0.5, 1, 1])
    with pytest.raises(PreprocessError, match="width"):
        pp.window(hu, 0, 0)


def test_resample_to_fixed_spacing():
    img = np.full((100, 50), 7.0, np.float32)
    out = pp.resample(img, (0.5, 2.0), 1.0)
    assert out.shape == (50, 100)
    np.testing.assert_allclose(out, 7.0, atol=1e-5)  # a constant stays constant
    ramp = np.tile(np.arange(80, dtype=np.float32), (80, 1))  # 1 unit per pixel of 0.5 mm
    half = pp.resample(ramp, (0.5, 0.5), 1.0)
    assert half.shape == (40, 40)
    # at 1 mm one pixel spans two of the old ones: the slope doubles
    assert np.median(np.diff(half[20, 5:35])) == pytest.approx(2.0, abs=1e-3)
    assert pp.resample(img, (1.0, 1.0)) is not None
    with pytest.raises(PreprocessError, match="spacing"):
        pp.resample(img, (0.0, 1.0))


def test_mr_scaling_removes_receive_gain():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (64, 64)).astype(np.float32)
    a, b = pp.scale_intensity(img * 900, "MR"), pp.scale_intensity(img * 2600, "MR")
    np.testing.assert_allclose(a, b, rtol=1e-5)
    with pytest.raises(PreprocessError, match="'US' is not supported"):
        pp.scale_intensity(img, "US")


def test_norm_table_per_vendor_with_modality_fallback():
    ones, twos = np.ones((4, 4), np.float32), np.full((4, 4), 3.0, np.float32)
    t = NormTable.fit([(ones, "CT", "A"), (twos, "CT", "B")])
    (mean_a, _), how = t.lookup("CT", "A")
    assert (mean_a, how) == (pytest.approx(1.0), "vendor")
    (mean_x, _), how = t.lookup("CT", "Unknown Vendor")
    assert (mean_x, how) == (pytest.approx(2.0), "modality")  # pooled over A and B
    assert NormTable.from_json(t.to_json()).entries == t.entries


def test_candidate_map_finds_a_bright_spot_inside_the_lung_not_the_body_wall():
    img = np.full((160, 160), 0.0, np.float32)  # air outside
    yy, xx = np.mgrid[0:160, 0:160]
    img[((yy - 80) / 70) ** 2 + ((xx - 80) / 70) ** 2 <= 1] = 0.93  # body
    img[((yy - 80) / 30) ** 2 + ((xx - 50) / 18) ** 2 <= 1] = 0.33  # a lung
    img[(yy - 70) ** 2 + (xx - 52) ** 2 <= 9] = 0.92  # a 6 mm nodule at row 70, col 52
    score = pp.candidate_map(img, "CT")
    assert score.shape == (80, 80)  # found at half resolution
    rois = pp.select_rois(score, 2)
    r, c = rois[0]["center"]
    assert abs(r - 70) <= 2 and abs(c - 52) <= 2
    assert rois[0]["row0"] == round(r - pp.CROP / 2)


def test_select_rois_suppresses_neighbours():
    score = np.zeros((80, 80), np.float32)
    score[10, 10], score[11, 11], score[60, 60] = 1.0, 0.9, 0.5
    rois = pp.select_rois(score, 2)
    centers = [tuple(round(v) for v in r["center"]) for r in rois]
    assert centers == [(21, 21), (121, 121)]  # the 0.9 next to the 1.0 is suppressed


def test_crop_pads_past_the_border():
    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = pp.crop(img, -2, 5, size=4, fill=-1)
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[:2], -1)
    np.testing.assert_array_equal(out[2, :], [5, 6, 7, 8])
    np.testing.assert_array_equal(out[3, 3], 18)


def test_roi_back_in_original_pixels():
    roi = {"center": (40.0, 50.0), "row0": 8, "col0": 18, "size": 64, "score": 0.5}
    o = pp.roi_in_original(roi, (0.5, 2.0))
    assert (o["row"], o["col"], o["rows"], o["cols"]) == (16, 9, 128, 32)
    assert o["center_mm"] == [40.0, 50.0] and o["size_mm"] == 64


def test_roi_is_clipped_to_the_image_in_original_pixels():
    # a candidate near the top-left corner: the padded crop starts before the first pixel
    roi = {"center": (10.0, 20.0), "row0": -22, "col0": -12, "size": 64, "score": 0.5}
    o = pp.roi_in_original(roi, (0.5, 0.5), shape=(100, 60))
    # crop rows -44..84, cols -24..104 in original pixels -> clipped to 0..84, 0..60
    assert (o["row"], o["col"], o["rows"], o["cols"]) == (0, 0, 84, 60)
    assert o["center_mm"] == [10.0, 20.0]


def test_prepare_rejects_unsupported_input_with_the_reason():
    t = NormTable({"CT/*": (0.0, 1.0)})
    with pytest.raises(PreprocessError, match="modality 'XA'"):
        pp.prepare(np.zeros((8, 8)), "XA", None, (1, 1), 1, 0, t)
    with pytest.raises(PreprocessError, match="2-D"):
        pp.prepare(np.zeros((2, 8, 8)), "CT", None, (1, 1), 1, 0, t)
    p = pp.prepare(np.full((100, 100), 1024, np.int16), "CT", "X", (0.8, 0.8), 1, -1024, t)
    assert p.image.shape == (80, 80) and p.norm == "modality"
