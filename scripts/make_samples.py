"""Regenerate samples/ from scikit-image's bundled data.

Usage: python scripts/make_samples.py [--annotate DIR]

Copies four photographs byte for byte from scikit-image's data directory
(checking their SHA-256 against scikit-image's own registry), cuts the
templates out of them, writes samples/truth.json and
samples/worked_examples.json, and checks every entry with OpenCV's
cv2.matchTemplate (TM_CCOEFF_NORMED): each template's best match must be
where it was cut, clearly ahead of any other position. The turned samples
(TURNED) are the image seen through a known similarity: their truth is the pose. With --annotate, it
also draws the ground truth on copies of the images in DIR for a visual check.
samples/README.md is written by hand.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

import cv2
import numpy as np
import skimage
from skimage.data._registry import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")
SKIMAGE_DATA = os.path.join(os.path.dirname(skimage.__file__), "data")

IMAGES = ("camera.png", "coins.png", "chelsea.png", "coffee.png")

# (image, template file, x, y, width, height, note)
CUTS = [
    ("camera.png", "camera_camcorder.png", 248, 132, 84, 60,
     "the camcorder on the tripod; gray"),
    ("chelsea.png", "chelsea_eye.png", 132, 82, 80, 66,
     "the eye on the viewer's left (the cat's right eye); RGB colour"),
    ("coffee.png", "coffee_spoon.png", 322, 64, 102, 265,
     "the spoon; RGBA: the colour channels are the plain crop, the alpha channel "
     "(255 inside, 0 outside) outlines the spoon's bowl and handle, an irregular "
     "shape; match with mask = alpha"),
    ("coins.png", "coins_coin.png", 270, 233, 62, 62,
     "one coin (bottom row, fifth from the left) with a 6-pixel margin of background"),
]

# (image, template file, centre (x, y), angle (degrees, counter-clockwise), scale, template (height, width), note):
# templates seen through a known similarity, for the turned and scaled search (find(..., angles, scales)).
TURNED = [
    ("camera.png", "camera_turned.png", (290.0, 162.0), 30.0, 1.15, (70, 90),
     "the camcorder and the hand on it, turned by 30 degrees and scaled by 1.15: the template is the image "
     "seen through that pose (cubic interpolation), so the truth is known by construction"),
]

# Coins: every coin is located with TM_CCOEFF_NORMED, then greedy non-maximum
# suppression (take the best score, blank +-half the template around it, repeat)
# down to this threshold. The coins differ in size and design, so their scores
# range from about 0.58 to 1; the best position that is not a coin scores about
# 0.11, so any threshold in between finds the same 24 coins.
COIN_THRESHOLD = 0.35
COIN_COUNT = 24  # counted by eye on the annotated image


def spoon_alpha(width, height, x0, y0):
    """The spoon outline in the template's coordinates: an ellipse and a polygon."""
    alpha = np.zeros((height, width), np.uint8)
    cv2.ellipse(alpha, (366 - x0, 287 - y0), (41, 40), 0, 0, 360, 255, -1)
    handle = [(372, 250), (380, 205), (392, 150), (398, 100), (402, 68),
              (420, 70), (412, 110), (400, 160), (390, 210), (386, 250)]
    cv2.fillPoly(alpha, [np.array([(x - x0, y - y0) for x, y in handle], np.int32)], 255)
    return alpha


def read(path):
    """RGB or gray array, as matcher.io.load_image returns it (checked by tests/test_io.py)."""
    a = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if a.ndim == 3:
        a = a[:, :, 2::-1] if a.shape[2] == 3 else a[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(a)


def write(path, a):
    bgr = a if a.ndim == 2 else a[:, :, [2, 1, 0, 3][: a.shape[2]]]
    if not cv2.imwrite(path, np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        sys.exit(f"could not write {path}")


def scores(image, template, mask=None):
    if mask is not None and template.ndim == 3:
        mask = np.repeat(mask[:, :, None], template.shape[2], axis=2)
    s = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED, mask=mask)
    return np.nan_to_num(s, nan=-1.0, posinf=-1.0, neginf=-1.0)


def peaks(s, h, w, threshold, limit=1000):
    """Greedy non-maximum suppression: up to ``limit`` (x, y, score) down to ``threshold``."""
    s, found = s.copy(), []
    while len(found) < limit:
        _, best, _, (x, y) = cv2.minMaxLoc(s)
        if best < threshold:
            break
        found.append((x, y, best))
        s[max(0, y - h // 2): y + h // 2 + 1, max(0, x - w // 2): x + w // 2 + 1] = -2
    return found


def check_unique(s, x, y, w, h, name):
    """The best score must sit at (x, y); return the best score outside +-(w, h) of it."""
    _, best, _, loc = cv2.minMaxLoc(s)
    if loc != (x, y) or best < 0.999:
        sys.exit(f"{name}: best match {loc} score {best:.4f}, expected ({x}, {y}) score 1")
    rest = s.copy()
    rest[max(0, y - h): y + h + 1, max(0, x - w): x + w + 1] = -1
    return float(rest.max())


def worked_examples():
    a = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0]
    k = [1, 0.9, 0.8, 0.7]
    conv = [0, 1, 2.9, 5.6, 9.0, 12.4, 15.8, 12.2, 8.3, 4.2, 0]  # by hand
    assert np.allclose(np.convolve(a, k, "valid"), conv, rtol=0, atol=1e-12)
    assert np.allclose(np.correlate(a, k[::-1], "valid"), conv, rtol=0, atol=1e-12)
    ssd_1d = [int(((np.array(a[i:i + 3]) - [3, 4, 5]) ** 2).sum()) for i in range(len(a) - 2)]
    image = np.arange(1, 19).reshape(3, 6)
    ssd_2d = [[int(((image[y:y + 2, x:x + 2] - [[5, 6], [11, 12]]) ** 2).sum()) for x in range(5)]
              for y in range(2)]
    assert ssd_2d == [[64, 36, 16, 4, 0], [16, 36, 64, 100, 144]]
    note_conv = ("np.convolve(image, template, 'valid'); offset 2 is the window ending on the value 2: "
                 "0*0.7 + 0*0.8 + 1*0.9 + 2*1 = 2.9")
    examples = [
        dict(example=1, name="1d_ssd", image=a, template=[3, 4, 5], method="ssd", mode="correlate",
             best={"x": 6}, best_score=0, scores=ssd_1d, note="[3, 4, 5] sits at offset 6"),
        dict(example=1, name="1d_ncc", image=a, template=[3, 4, 5], method="ncc", mode="correlate",
             best={"x": 6}, best_score=1, scores=None,
             note="only the best score is given: windows of zeros have zero variance"),
        dict(example=2, name="1d_convolve", image=a, template=k, method="ccorr", mode="convolve",
             best={"x": 6}, best_score=15.8, scores=conv, note=note_conv),
        dict(example=2, name="1d_correlate_flipped", image=a, template=k[::-1], method="ccorr",
             mode="correlate", best={"x": 6}, best_score=15.8, scores=conv,
             note="correlating with the flipped kernel gives the same numbers as convolving"),
        dict(example=3, name="2d_ssd", image=image.tolist(), template=[[5, 6], [11, 12]], method="ssd",
             mode="correlate", best={"x": 4, "y": 0}, best_score=0, scores=ssd_2d,
             note="scores[y][x]; every window differs from the template by a constant d, so ssd = 4 d^2"),
        dict(example=4, name="2x2_ssd", image=[[1, 20], [0, 5]], template=[[2, 20], [0, 5]], method="ssd",
             mode="correlate", best={"x": 0, "y": 0}, best_score=1, scores=[[1]],
             note="one position; only the top-left pixel differs, by 1"),
    ]
    return {
        "description": "Small matching problems with outputs computed by hand (and checked with numpy by "
                       "scripts/make_samples.py). 'scores' is the full output (null when not given); "
                       "'best' is the position of the best score (x = column, y = row).",
        "tolerance": 1e-9,
        "examples": examples,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotate", metavar="DIR", help="also write annotated copies of the images here")
    args = parser.parse_args()
    os.makedirs(SAMPLES, exist_ok=True)
    for name in IMAGES:
        src = os.path.join(SKIMAGE_DATA, name)
        digest = hashlib.sha256(open(src, "rb").read()).hexdigest()
        if digest != registry[f"data/{name}"]:
            sys.exit(f"{src}: SHA-256 {digest} differs from scikit-image's registry")
        shutil.copyfile(src, os.path.join(SAMPLES, name))

    truth, annotated = [], {}
    for image_name, template_name, x, y, w, h, note in CUTS:
        image = read(os.path.join(SAMPLES, image_name))
        template = image[y:y + h, x:x + w].copy()
        mask = None
        if template_name == "coffee_spoon.png":
            mask = spoon_alpha(w, h, x, y)
            template = np.dstack([template, mask])
        write(os.path.join(SAMPLES, template_name), template)
        colour = template[:, :, :3] if mask is not None else template
        s = scores(image, colour, mask)
        runner_up = check_unique(s, x, y, w, h, template_name)
        entry = {"image": image_name, "template": template_name, "x": x, "y": y, "width": w, "height": h,
                 "method": "ncc", "mask": "alpha" if mask is not None else None,
                 "runner_up_score": round(runner_up, 3),
                 "note": f"{note}. Cut from the image at (x, y); OpenCV TM_CCOEFF_NORMED scores 1 there "
                         f"and at most {runner_up:.3f} elsewhere (outside +-width, +-height)."}
        box = annotated.setdefault(image_name, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                                   if image.ndim == 2 else image[:, :, ::-1].copy())
        cv2.rectangle(box, (x, y), (x + w - 1, y + h - 1), (0, 0, 255), 1)
        if template_name == "coins_coin.png":
            found = peaks(s, h, w, COIN_THRESHOLD)
            if len(found) != COIN_COUNT:
                sys.exit(f"coins: {len(found)} peaks above {COIN_THRESHOLD}, expected {COIN_COUNT}")
            next_best = peaks(s, h, w, -1.0, limit=COIN_COUNT + 1)[-1][2]
            rows = []  # rows of coins (a gap of over 30 pixels in y starts a row), left to right
            for p in sorted(found, key=lambda p: p[1]):
                if rows and p[1] - rows[-1][-1][1] <= 30:
                    rows[-1].append(p)
                else:
                    rows.append([p])
            found = [p for row in rows for p in sorted(row)]
            entry["matches"] = [{"x": px, "y": py, "score": round(float(sc), 3)} for px, py, sc in found]
            entry["note"] += (
                f" 'matches' lists the top-left of all {COIN_COUNT} coins, approximate (the coins differ "
                f"in size): TM_CCOEFF_NORMED, then greedy non-maximum suppression (keep the best score, "
                f"discard scores within +-{w // 2} pixels of it, repeat) down to a threshold of "
                f"{COIN_THRESHOLD}; the coins score {min(p[2] for p in found):.2f} to 1, the next peak "
                f"(not a coin) {next_best:.2f}. "
                "Checked by eye on an annotated image (scripts/make_samples.py --annotate DIR)."
            )
            for px, py, _ in found:
                cv2.rectangle(box, (px, py), (px + w - 1, py + h - 1), (0, 200, 0), 1)
        truth.append(entry)

    for image_name, template_name, (cx, cy), angle, scale, (h, w), note in TURNED:
        image = read(os.path.join(SAMPLES, image_name)).astype(np.float32)
        a, b = scale * np.cos(np.radians(angle)), scale * np.sin(np.radians(angle))
        tcx, tcy = (w - 1) / 2.0, (h - 1) / 2.0
        pose = np.array([[a, b, cx - a * tcx - b * tcy], [-b, a, cy + b * tcx - a * tcy]])
        template = cv2.warpAffine(image, pose, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)
        write(os.path.join(SAMPLES, template_name), np.clip(np.round(template), 0, 255).astype(np.uint8))
        truth.append({"image": image_name, "template": template_name, "center": {"x": cx, "y": cy},
                      "angle": angle, "scale": scale, "width": w, "height": h, "method": "ncc", "mask": None,
                      "note": note})

    with open(os.path.join(SAMPLES, "truth.json"), "w") as f:
        json.dump(truth, f, indent=2)
        f.write("\n")
    with open(os.path.join(SAMPLES, "worked_examples.json"), "w") as f:
        json.dump(worked_examples(), f, indent=2)
        f.write("\n")
    if args.annotate:
        os.makedirs(args.annotate, exist_ok=True)
        for name, box in annotated.items():
            cv2.imwrite(os.path.join(args.annotate, name), box)
    total = sum(os.path.getsize(os.path.join(SAMPLES, n)) for n in os.listdir(SAMPLES))
    print(f"wrote {len(os.listdir(SAMPLES))} files to {SAMPLES} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
