"""Phantom realism (#13): variation independent of the grid, anatomy measured on labels, scanner effects,
annotation variability. Slow tests generate 16 cpu cases (about 30 s)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sepnet_core.data.phantom import generate_case, scanner
from sepnet_core.data.phantom import measure as m
from sepnet_core.data.phantom.anatomy import sample_variation
from sepnet_core.data.phantom.dataset import case_seed
from sepnet_core.data.phantom.generator import case_params, get_profile, metal_map, sample_case
from sepnet_core.data.phantom.preview import gallery
from sepnet_core.organs import ORGANS, organ_by_key

ADULT_CM3 = {  # as tests/test_phantom.py (adult ranges; spinal cord: the part in view)
    "brain_stem": (20, 35), "eye_l": (6, 9), "eye_r": (6, 9), "lens_l": (0.15, 0.35), "lens_r": (0.15, 0.35),
    "optic_nerve_l": (0.3, 1.0), "optic_nerve_r": (0.3, 1.0), "optic_chiasm": (0.2, 0.8),
    "temporal_lobe_l": (40, 90), "temporal_lobe_r": (40, 90), "pituitary": (0.3, 1.0),
    "parotid_l": (15, 40), "parotid_r": (15, 40), "inner_ear_l": (0.2, 0.8), "inner_ear_r": (0.2, 0.8),
    "middle_ear_l": (0.5, 2.5), "middle_ear_r": (0.5, 2.5), "tmj_l": (0.5, 2.0), "tmj_r": (0.5, 2.0),
    "spinal_cord": (5, 20), "mandible_l": (25, 45), "mandible_r": (25, 45),
}
CASES = 16


@pytest.fixture(scope="module")
def sixteen():
    """16 cpu cases of data-set seed 0 (as ``sepnet phantom --seed 0``) with their parameters."""
    seeds = [case_seed(0, i) for i in range(CASES)]
    return [(generate_case(s, "cpu", f"phantom_{i:03d}"), case_params(s, "cpu")) for i, s in enumerate(seeds)]


@pytest.fixture(scope="module")
def four():
    seeds = [case_seed(0, i) for i in range(4)]
    return [(generate_case(s, "cpu"), case_params(s, "cpu")) for s in seeds]


def params(n: int, profile: str = "cpu"):
    return [case_params(case_seed(1, i), profile) for i in range(n)]


# ------------------------------------------------------------------ 1. variation independent of the grid
def test_grid_is_drawn_independently_of_the_head():
    cases = params(300)
    scale = np.array([p.pose.scale for p in cases])
    pixel = np.array([p.grid.spacing_mm[1] for p in cases])
    assert abs(np.corrcoef(scale, pixel)[0, 1]) < 0.2  # the field of view no longer follows the head
    assert pixel.min() < 1.9 and pixel.max() > 2.3
    # where the head's reference point lands in the field of view (mm from the image centre)
    centre = np.array([[p.grid.origin[0] + 63.5 * p.grid.spacing_mm[2],
                        p.grid.origin[1] + 63.5 * p.grid.spacing_mm[1]] for p in cases])
    head = np.array([p.pose.forward(np.array([[0.0, -10.0, 0.0]]))[0, :2] for p in cases])
    assert (np.std(head - centre, axis=0) > 8.0).all()
    bottom = np.array([p.grid.origin[2] - p.pose.forward(np.zeros((1, 3)))[0, 2] for p in cases])
    assert np.std(bottom / scale) > 10.0  # start slice: +-30 mm around the mandible, not anchored to it
    cut = [p.cutoff for p in cases]
    assert 0.05 < cut.count("top") / 300 < 0.16 and 0.03 < cut.count("bottom") / 300 < 0.14  # 10 %, 8 %
    flexion = np.array([p.flexion_deg for p in cases])
    jaw = np.array([p.variation.jaw_deg for p in cases])
    assert flexion.min() < -10 and flexion.max() > 10 and jaw.min() < 1 and jaw.max() > 11
    assert {p.cutoff for p in params(60, "smoke")} == {""}  # the CI profile keeps every organ


def test_organs_stretch_per_axis_without_changing_volume():
    v = sample_variation(np.random.default_rng(3), 1.0)
    stretch = np.array([v.aniso[k] for k in ("parotid_l", "parotid_r", "temporal_lobe_l", "brain_stem")])
    assert np.allclose(stretch.prod(axis=1), 1.0)
    assert np.ptp(np.log(stretch), axis=1).max() > 0.1
    shifts = np.array([v.shift[k] for k in v.shift if k.startswith("parotid")])
    assert np.abs(shifts).max() > 1.5


@pytest.mark.slow
def test_organ_centres_move_in_voxel_space(sixteen):
    spread = m.organ_centre_spread([case.label for case, _ in sixteen])["median"]
    assert spread[0] >= 4.0, f"organ centres move by a median SD of only {spread[0]:.1f} slices"
    in_plane = math.hypot(spread[1], spread[2]) / math.sqrt(2)
    assert in_plane >= 6.0, f"organ centres move by a median SD of only {in_plane:.1f} pixels in-plane"


@pytest.mark.slow
def test_organ_volumes_on_sixteen_cases(sixteen):
    volumes = []
    for case, _ in sixteen:
        counts = np.bincount(case.label.ravel(), minlength=23)
        voxel = float(np.prod(case.geometry.spacing_mm)) / 1000.0
        volumes.append({o.key: counts[o.label] * voxel for o in ORGANS})
    whole = [v for v, (_, p) in zip(volumes, sixteen, strict=True) if not p.cutoff]
    assert len(whole) >= 10
    for v, (case, p) in zip(volumes, sixteen, strict=True):
        if not p.cutoff:
            outside = {k: round(x, 2) for k, x in v.items() if not ADULT_CM3[k][0] <= x <= ADULT_CM3[k][1]}
            assert not outside, f"{case.case_id}: volumes (cm3) outside the adult ranges: {outside}"
            continue
        assert all(v[k] <= ADULT_CM3[k][1] for k in v), case.case_id  # partial or absent, never larger
        cut = ("temporal_lobe_l", "temporal_lobe_r") if p.cutoff == "top" else ("mandible_l", "mandible_r")
        typical = np.mean([w[cut[0]] + w[cut[1]] for w in whole])
        assert v[cut[0]] + v[cut[1]] < 0.9 * typical, f"{case.case_id}: the {p.cutoff} cut-off cuts nothing"


# ---------------------------------------------------------------------------- 2. anatomy, measured
def nominal(**changes):
    v = sample_variation(np.random.default_rng(0), 1.0)
    plain = {"size": {k: 1.0 for k in v.size}, "shift": {}, "aniso": {}, "limits": {}, "jaw_deg": 0.0}
    return dataclasses.replace(v, **{**plain, **changes})


def test_mandible_angle_and_lower_border_by_design():
    zs = np.arange(-105.0, 0.0, 1.0)
    for jaw in (0.0, 10.0):
        _, label = m.render_canonical(nominal(jaw_deg=jaw), zs, (-95.0, 15.0), (0.0, 64.0))
        gonial, border = m.gonial_angle(label, (1.0, 1.0, 1.0), "mandible_l")
        assert 117.0 <= gonial <= 132.0  # adult 120-130 deg (was about 85)
        assert 19.0 + jaw <= border <= 31.0 + jaw  # adult about 25 deg to the Frankfort plane (was about 5)


def test_anatomy_measured_on_generated_cases(four):
    gonial, border, gap, eye, ear = [], [], [], [], []
    for case, p in four:
        sp = case.geometry.spacing_mm
        for side in "lr":
            if p.cutoff != "bottom":
                g, b = m.gonial_angle(case.label, sp, f"mandible_{side}")
                gonial.append(g)
                border.append(b - p.variation.jaw_deg - p.pose.angles_deg[0])
            gap.append(m.temporal_stem_gap_mm(case.label, sp, f"temporal_lobe_{side}"))
            eye.append(m.eye_protrusion_mm(case.image, case.label, sp, f"eye_{side}"))
            ear.append(m.middle_ear_width_mm(case.label, sp, f"middle_ear_{side}"))
    assert 110.0 <= np.median(gonial) <= 135.0
    assert 12.0 <= np.median(border) <= 32.0
    assert 0.0 < np.median(gap) <= 9.0  # medial temporal lobe beside the brain stem (was about 12 mm)
    assert 12.0 <= np.median(eye) <= 20.0  # eye in front of the lateral orbital rim (adult 15-18 mm)
    assert max(ear) <= 6.0  # middle ear 2-6 mm wide (was 8)


def test_temporal_lobe_by_design():
    zs = np.arange(-6.0, 50.0, 1.0)
    hu, label = m.render_canonical(nominal(), zs, (-60.0, 50.0), (0.0, 70.0))
    gap = m.temporal_stem_gap_mm(label, (1.0, 1.0, 1.0), "temporal_lobe_l")
    assert 1.0 <= gap <= 5.0  # the ambient cistern, 2-5 mm in adults
    horn = (label == organ_by_key("temporal_lobe_l").label)
    csf_inside = (hu < 20) & ~horn & (np.abs(np.arange(hu.shape[2]) - 30)[None, None, :] < 4)
    assert csf_inside[:, 40:80].any()  # the temporal horn: CSF inside the lobe, not labelled
    assert m.fissure_contrast_hu(hu, label, "temporal_lobe_l") > 10.0  # the Sylvian fissure bounds it above


def test_sylvian_fissure_on_generated_cases(four):
    contrast = [m.fissure_contrast_hu(case.image, case.label, f"temporal_lobe_{s}")
                for case, p in four if p.cutoff != "top" for s in "lr"]
    assert np.median(contrast) > 4.0


# ------------------------------------------------------------------------------- 3. scanner effects
def test_projection_and_reconstruction_pair():
    n, pixel = 96, 2.0
    yy, xx = np.mgrid[:n, :n]
    disc = ((yy - 40.0) ** 2 + (xx - 55.0) ** 2 <= 15.0**2).astype(np.float64) * 0.02  # 1/mm
    iy, ix = np.nonzero(disc)
    ys, xs = (iy - (n - 1) / 2) * pixel, (ix - (n - 1) / 2) * pixel
    angles = np.linspace(0, np.pi, 180, endpoint=False)
    bins = int(np.ceil(n * math.sqrt(2))) + 4
    sino = scanner.project_points(disc[iy, ix] * pixel**2, ys, xs, angles, bins, pixel)
    assert np.median(sino.max(axis=1)) == pytest.approx(0.02 * 2 * 15.0 * pixel, rel=0.05)  # central chord
    image = scanner.fbp(sino, angles, pixel, (n, n), pixel)
    inside = ((yy - 40.0) ** 2 + (xx - 55.0) ** 2 <= 12.0**2)
    outside = ((yy - 40.0) ** 2 + (xx - 55.0) ** 2 >= 19.0**2)
    assert np.median(image[inside]) == pytest.approx(0.02, rel=0.05)
    assert abs(np.median(image[outside])) < 0.001


def test_metal_streaks_are_dark_between_fillings_and_reach_far():
    metal = np.zeros((128, 128), np.float32)
    metal[60:62, 40:42] = metal[60:62, 86:88] = 40 * scanner.MU_WATER_PER_MM
    streaks = metal_free = scanner.metal_streaks(metal, 2.0, np.random.default_rng(0))
    assert streaks[60:62, 55:72].mean() < -100  # the dark band between two fillings
    far = np.hypot(*np.mgrid[:128, :128] - np.array([61, 64])[:, None, None]) * 2.0 > 40
    assert (np.abs(streaks[far]) > 20).mean() > 0.05  # streaks, not a blob
    metal_free = scanner.metal_streaks(np.zeros_like(metal), 2.0, np.random.default_rng(0))
    assert not metal_free.any()


def test_metal_in_about_half_of_the_cases():
    share = np.mean([bool(p.fillings) for p in params(200)])
    assert 0.4 <= share <= 0.6


@pytest.mark.parametrize("index", [0, 2])
def test_streaks_in_generated_cases(index):
    seed = case_seed(0, index)  # case 0 has fillings, case 2 none
    p = case_params(seed)
    with_, without = generate_case(seed, "cpu"), generate_case(seed, "cpu", artefacts=False)
    diff = with_.image - without.image
    if p.fillings:
        slices = np.nonzero(metal_map(p).any(axis=(1, 2)))[0]
        body = without.image[slices] > -300
        assert (np.abs(diff[slices][body]) > 30).mean() > 0.05
    else:
        assert np.abs(diff).max() <= 26  # only the band between the petrous bones (-5..-25 HU)
        assert diff.min() <= -5


def test_noise_has_a_ct_spectrum_and_follows_patient_size():
    noise = scanner.nps_noise(np.random.default_rng(0), (4, 128, 128), 1.0)
    assert np.allclose(noise.std(axis=(1, 2)), 1.0, atol=1e-3)
    power = (np.abs(np.fft.fft2(noise)) ** 2).mean(axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))  # cycles/mm
    low, mid = power[(f > 0) & (f < 0.05)].mean(), power[(f > 0.15) & (f < 0.3)].mean()
    assert low < 0.3 * mid  # not white: FBP's ramp removes the low frequencies
    coarse = scanner.nps_noise(np.random.default_rng(0), (4, 128, 128), 2.0)
    assert np.corrcoef(coarse[:, :, :-1].ravel(), coarse[:, :, 1:].ravel())[0, 1] < -0.05  # 2 mm pixels
    yy, xx = np.mgrid[:200, :200]
    water = np.where((yy - 100) ** 2 + (xx - 100) ** 2 <= 80**2, 0.0, -1000.0)[None]
    assert scanner.water_diameter_mm(water, 1.0)[0] == pytest.approx(160.0, rel=0.02)
    scale = scanner.noise_scale(np.array([100.0, 160.0, 220.0]))
    assert scale[0] < scale[1] < scale[2] and scale[1] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- 4. the annotator
def test_annotator_limits_move_the_brain_stem_and_cord_border():
    zs = np.arange(-50.0, 64.0, 1.0)
    tops, borders = [], []
    for top, border in ((-8.0, -6.0), (-2.0, 8.0)):
        _, label = m.render_canonical(nominal(limits={"stem_top": top, "stem_cord": border}), zs,
                                      (-10.0, 45.0), (-20.0, 20.0))
        stem, cord = (np.nonzero((label == v).any(axis=(1, 2)))[0] for v in (1, 20))
        tops.append(zs[stem.max()])
        borders.append(zs[cord.max()])
    assert tops[1] - tops[0] == pytest.approx(6.0, abs=1.5)
    assert borders[1] - borders[0] == pytest.approx(14.0, abs=1.5)


def test_labels_carry_the_annotator(four):
    case, _ = four[0]
    exact = generate_case(case_seed(0, 0), "cpu", annotator=False)
    assert np.array_equal(case.image, exact.image)  # the image is the truth
    moved = (case.label != exact.label) & ((case.label > 0) | (exact.label > 0))
    share = moved.sum() / max((exact.label > 0).sum(), 1)
    assert 0.03 < share < 0.4  # boundaries displaced by 1-2 mm on 2 mm voxels
    for key in ("eye_l", "parotid_l", "brain_stem"):
        a, b = case.label == organ_by_key(key).label, exact.label == organ_by_key(key).label
        assert 0.6 < 2 * (a & b).sum() / (a.sum() + b.sum()) < 0.99, key


def test_gallery_writes_a_png(tmp_path):
    cases = [generate_case(s, "smoke", f"c{s}") for s in (0, 1)]
    path = gallery(cases, tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        gallery(cases, path)
    with pytest.raises(ValueError, match="titles"):
        gallery(cases, tmp_path / "h.png", titles=["a"])


def test_profiles_keep_their_grids():
    for name in ("cpu", "smoke", "structseg"):
        prof = get_profile(name)
        p = sample_case(np.random.default_rng(0), prof)
        assert p.grid.shape[1:] == (prof.matrix, prof.matrix)
