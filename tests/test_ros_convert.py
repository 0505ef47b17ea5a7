"""sensor_msgs <-> numpy without a ROS graph: every encoding, padding, byte order and refusal reason.

The YUV 4:2:2 and Bayer inputs are made here from a known RGB image by the
cameras' own arithmetic (BT.601 studio-range YUV with chroma averaged over
pixel pairs; a Bayer mosaic keeping one colour per pixel), so a wrong byte
order or Bayer phase in the decoder shows as a large error."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from funk_perception.ros.convert import (
    FrameError,
    camera_matrix,
    compressed_to_rgb,
    depth_to_metres,
    image_to_rgb,
    rgb_to_image_fields,
    stamp_ns,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def raw(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> SimpleNamespace:
    """An Image-like message of ``pixels`` with ``pad`` bytes of garbage at the end of each row."""
    height, width = pixels.shape[:2]
    data = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<")).reshape(height, -1).view(np.uint8)
    rows = np.concatenate([data, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(
        height=height,
        width=width,
        encoding=encoding,
        step=rows.shape[1],
        is_bigendian=int(big_endian),
        data=rows.tobytes(),
    )


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)])),
        ("bgra8", np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_give_the_same_rgb(encoding, pixels, pad):
    assert np.array_equal(image_to_rgb(raw(pixels, encoding, pad)), RGB)


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_scales_full_range_and_honours_byte_order(big_endian):
    grey = np.array([[0, 257, 65535]], np.uint16)
    out = image_to_rgb(raw(grey, "mono16", pad=2, big_endian=big_endian))
    assert out.shape == (1, 3, 3) and out[0, :, 0].tolist() == [0, 1, 255]


def test_mono8_is_replicated_to_three_channels():
    grey = RGB[:, :, 0]
    out = image_to_rgb(raw(grey, "mono8", pad=1))
    assert np.array_equal(out, np.dstack([grey] * 3))


def test_rosbags_messages_decode_like_plain_ones():
    store = get_typestore(Stores.ROS2_JAZZY)
    Image, Header, Time = (
        store.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    )
    msg = Image(Header(Time(3, 5), "cam"), 5, 7, "bgr8", 0, 21, RGB[:, :, ::-1].reshape(-1).copy())
    back = store.deserialize_cdr(store.serialize_cdr(msg, "sensor_msgs/msg/Image"), "sensor_msgs/msg/Image")
    assert np.array_equal(image_to_rgb(back), RGB)
    assert stamp_ns(back.header) == 3_000_000_005


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(encoding="rgb16"), "encoding"),
        (dict(step=20), "size"),
        (dict(data=b"\0" * 104), "truncated"),
        (dict(data=b"\0" * 106), "size"),
        (dict(height=0, data=b""), "empty"),
        (dict(width=5000, height=5000, step=15000), "too_large"),
    ],
)
def test_bad_images_are_refused_with_a_reason(change, reason):
    msg = raw(RGB, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(FrameError) as err:
        image_to_rgb(msg)
    assert err.value.reason == reason
    assert "image." in str(err.value) or "image:" in str(err.value)


def test_compressed_jpeg_and_png():
    ok, png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert np.array_equal(compressed_to_rgb(SimpleNamespace(format="png", data=png.tobytes())), RGB)
    xs, ys = np.meshgrid(np.arange(64), np.arange(48))
    smooth = (np.dstack([xs, ys, np.full_like(xs, 30)]) * 3).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=jpg.tobytes()))
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).max() <= 8
    with pytest.raises(FrameError) as err:
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"\xff\xd8 not really"))
    assert err.value.reason == "compressed"
    with pytest.raises(FrameError) as err:
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b""))
    assert err.value.reason == "empty"


def test_depth_millimetres_and_metres_with_invalid_readings_as_nan():
    mm = np.array([[0, 1000, 65535]], np.uint16)
    for big_endian in (False, True):
        out = depth_to_metres(raw(mm, "16UC1", pad=2, big_endian=big_endian))
        assert np.isnan(out[0, 0]) and out[0, 1] == pytest.approx(1.0) and out[0, 2] == pytest.approx(65.535)
    m = np.array([[np.nan, np.inf, -1.0, 0.0, 2.5]], np.float32)
    out = depth_to_metres(raw(m, "32FC1"))
    assert np.isnan(out[0, :4]).all() and out[0, 4] == np.float32(2.5)
    with pytest.raises(FrameError) as err:
        depth_to_metres(raw(RGB, "rgb8"))
    assert err.value.reason == "depth_encoding"


def test_camera_matrix_checks_focal_lengths():
    k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    assert camera_matrix(SimpleNamespace(k=k))[0, 2] == 320
    for bad in ([0.0] * 9, [500.0, 0, 320]):
        with pytest.raises(FrameError) as err:
            camera_matrix(SimpleNamespace(k=bad))
        assert err.value.reason == "camera_info"


def test_rgb_to_image_fields_round_trips():
    fields = rgb_to_image_fields(RGB)
    msg = SimpleNamespace(
        **{k: getattr(fields, k) for k in ("height", "width", "encoding", "is_bigendian", "step")}, data=fields.data
    )
    assert np.array_equal(image_to_rgb(msg), RGB)


# a smooth image: demosaicing and chroma subsampling are exact or near it on gradients, so the tolerance
# can be tight enough that swapping U and V, Y and chroma, or the Bayer phase fails by far
_XS, _YS = np.meshgrid(np.arange(64), np.arange(48))
SMOOTH = np.dstack([_XS * 3, _YS * 4, 255 - _XS * 2]).astype(np.uint8)


def yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """``rgb`` as packed 4:2:2 bytes (H, W, 2), ``order`` "yuyv" or "uyvy": BT.601 studio range, as cameras."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    y0, y1 = (np.round(y[:, i::2]).astype(np.uint8) for i in (0, 1))
    u, v = (np.round((c[:, 0::2] + c[:, 1::2]) / 2).astype(np.uint8) for c in (u, v))
    quads = [y0, u, y1, v] if order == "yuyv" else [u, y0, v, y1]
    return np.stack(quads, axis=-1).reshape(rgb.shape[0], rgb.shape[1], 2)


def bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The (H, W) mosaic a sensor with colour filter ``pattern`` (top-left 2x2 block, e.g. "rggb") records."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for colour, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return out


@pytest.mark.parametrize("pad", [0, 4])
@pytest.mark.parametrize(
    "encoding, order", [("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv"), ("uyvy", "uyvy"), ("yuv422", "uyvy")]
)
def test_yuv422_decodes_to_the_image_it_was_made_from(encoding, order, pad):
    packed = yuv422(SMOOTH, order)
    out = image_to_rgb(raw(packed, encoding, pad))
    assert out.shape == SMOOTH.shape
    assert np.abs(out.astype(int) - SMOOTH).max() <= 4  # rounding of Y, U, V and of the chroma average
    other = "uyvy" if order == "yuyv" else "yuyv"
    assert np.abs(image_to_rgb(raw(packed, other)).astype(int) - SMOOTH).max() > 50  # the order matters


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_mosaics_decode_to_the_image_they_were_made_from(pattern):
    mosaic = bayer(SMOOTH, pattern)
    out = image_to_rgb(raw(mosaic, f"bayer_{pattern}8", pad=3))
    assert out.shape == SMOOTH.shape
    # a linear gradient is interpolated exactly away from the border, where OpenCV replicates
    assert np.abs(out.astype(int) - SMOOTH)[2:-2, 2:-2].max() <= 1
    for other in {"rggb", "bggr", "gbrg", "grbg"} - {pattern}:
        wrong = image_to_rgb(raw(mosaic, f"bayer_{other}8"))
        assert np.abs(wrong.astype(int) - SMOOTH)[2:-2, 2:-2].max() > 20, other


def test_yuv422_with_an_odd_width_is_refused():
    msg = raw(yuv422(SMOOTH, "yuyv")[:, :-1], "yuv422_yuy2")
    assert msg.width == 63
    with pytest.raises(FrameError) as err:
        image_to_rgb(msg)
    assert err.value.reason == "size" and "even width" in str(err.value)
