import json

import numpy as np
import pytest

from labeling_media import portrait_frames, tone_bursts, write_audio_only, write_video
from emoforge.cli import main
from emoforge.labeling.labels import find_labels, read_labels
from emoforge.labeling.label import LabelConfig, label_video
from emoforge.labeling.speed import SpeedBuckets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def labelled(talking_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    return label_video(talking_video, out), out


def test_a_talking_video_gets_every_label(labelled):
    labels, out = labelled
    assert labels.ok, labels.meta["reason"]
    a = labels.arrays
    n = labels.meta["video"]["n_frames"]
    assert n == 50 and a["frame_time_s"][1] == pytest.approx(0.04)
    assert (a["face_count"] == 1).all() and (a["dominant_track_id"] == 0).all()
    assert a["pose_valid"].all() and a["mesh_px"].shape == (50, 478, 3)
    # the picture turns 1° per frame in the image plane: that is the rotation speed
    assert np.nanmedian(a["velocity_deg_per_frame"]) == pytest.approx(1.0, abs=0.15)
    assert np.nanmedian(a["velocity_deg_per_s"]) == pytest.approx(25.0, abs=4)
    roll = a["yaw_pitch_roll_deg"][:, 2]
    assert roll[-1] - roll[0] == pytest.approx(49, abs=6)  # clockwise in the image = positive roll
    # the face box holds the face and lies in the frame
    box = a["box_xyxy_px"]
    assert (box[:, 0] >= 0).all() and (box[:, 2] <= 320).all() and ((box[:, 2] - box[:, 0]) > 40).all()
    assert labels.meta["shots"][0]["dominant_reason"] == "only face"
    assert labels.audio["logmel"].shape[1] == 80
    assert labels.meta["timing_cpu_s"]["detect"] > 0


def test_rerun_skips_and_reads_back(labelled, talking_video):
    labels, out = labelled
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = label_video(talking_video, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written  # found, not recomputed
    assert again.meta["video_id"] == labels.meta["video_id"]
    np.testing.assert_array_equal(again.arrays["velocity_deg_per_s"], labels.arrays["velocity_deg_per_s"])  # whole
    back = read_labels(find_labels(out)[0])
    np.testing.assert_array_equal(back.arrays["velocity_deg_per_s"], labels.arrays["velocity_deg_per_s"])
    relabelled = label_video(talking_video, out, LabelConfig(smoothing_sigma_frames=1.0))  # new config: relabel
    assert relabelled.meta["config"]["smoothing_sigma_frames"] == 1.0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} != written


def test_frames_from_elsewhere_get_the_labels_of_their_file(labelled, talking_video, tmp_path):
    from emoforge.labeling.audio import load_audio_16k_mono
    from emoforge.labeling.label import label_frames
    from emoforge.labeling.video import iter_frames, probe_video

    by_file, _ = labelled
    info, audio = probe_video(talking_video), load_audio_16k_mono(talking_video)
    source = {"what": "the test video's frames"}
    out = tmp_path / "frames"
    by_frames = label_frames(iter_frames(talking_video), info, audio, out, "span-1", source)
    assert by_frames.ok and by_frames.meta["video_id"] == "span-1" and by_frames.meta["source"] == source
    assert set(by_frames.arrays) == set(by_file.arrays)
    for name, values in by_file.arrays.items():
        np.testing.assert_array_equal(by_frames.arrays[name], values, err_msg=name)
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = label_frames(iter(()), info, audio, out, "span-1", source)  # finished: no frame is read
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written
    np.testing.assert_array_equal(again.arrays["box_xyxy_px"], by_file.arrays["box_xyxy_px"])
    moved = label_frames(iter(()), info, audio, out, "span-1", {"what": "other frames"})  # another source: labelled again
    assert not moved.ok and "no decodable video frame" in moved.meta["reason"]
    silent = label_frames(iter_frames(talking_video), info, None, tmp_path / "silent", "span-2", source)
    assert silent.ok and not silent.arrays["speech"].any() and "no audio" in silent.meta["warnings"][0]


def test_graphs_lent_across_calls_give_the_labels_of_fresh_ones(labelled, talking_video, tmp_path):
    from emoforge.labeling.audio import load_audio_16k_mono
    from emoforge.labeling.label import LabelModels, label_frames
    from emoforge.labeling.video import DecodedFrame, iter_frames, probe_video

    by_file, _ = labelled
    info, audio = probe_video(talking_video), load_audio_16k_mono(talking_video)
    models = LabelModels(LabelConfig())
    try:
        blank = (DecodedFrame(i, i / 25, np.zeros((240, 320, 3), np.uint8)) for i in range(30))
        nothing = label_frames(blank, info, None, tmp_path / "blank", "blank", {"what": "no face"}, models=models)
        assert nothing.ok and not nothing.arrays["face_count"].any()  # the detector's last frame showed no face
        for run in ("one", "two"):  # the graphs are still open after a call, and remember nothing of it
            lent = label_frames(iter_frames(talking_video), info, audio, tmp_path / run, run, {"what": run}, models=models)
            for name, values in by_file.arrays.items():
                np.testing.assert_array_equal(lent.arrays[name], values, err_msg=name)
        with pytest.raises(ValueError, match="label models built for"):
            label_frames(iter_frames(talking_video), info, audio, tmp_path / "other", "x", {}, LabelConfig(crop_mesh=False),
                         models=models)
    finally:
        models.close()


def test_cli_labels_and_fits_buckets(talking_video, tmp_path, capsys):
    silent = tmp_path / "silent.mp4"
    write_video(silent, portrait_frames(25, size=(160, 120)), audio=np.zeros(16000, np.float32))
    out = tmp_path / "out"
    assert main(["label", str(talking_video), str(silent), "--out", str(out), "--buckets", "3", "--min-bucket-width", "0", "--no-mesh"]) == 0
    printed = capsys.readouterr().out
    assert "no speech" in printed and "speed buckets" in printed
    buckets = SpeedBuckets.load(out / "speed_buckets.json")
    assert buckets.d == 3 and buckets.window_m == 2
    assert json.loads((out / "label_run.json").read_text())["config"]["store_mesh"] is False
    assert main(["label-buckets", str(out), "--buckets", "2"]) == 0
    assert "VMV" in capsys.readouterr().out


def test_workers_in_processes_bound_to_cores_label_as_one_process_does(talking_video, tmp_path, capsys):
    """--workers 2 (a process per video, each bound to a core) writes the same labels as
    --workers 1 (in this process)."""
    second = tmp_path / "second.mp4"
    write_video(second, portrait_frames(30, size=(160, 120), roll_deg_per_frame=2.0),
                audio=tone_bursts(1.2, on_s=((0.2, 1.0),)))
    labelled = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        assert main(["label", str(talking_video), str(second), "--out", str(out), "--workers", str(workers)]) == 0
        assert capsys.readouterr().out.count(": ok, ") == 2
        labelled[workers] = {p.name: read_labels(p) for p in sorted(out.glob("*.labels.json"))}
    assert labelled[1].keys() == labelled[2].keys() and len(labelled[1]) == 2
    for name, one in labelled[1].items():
        two = labelled[2][name]
        assert one.arrays.keys() == two.arrays.keys()
        for key, values in one.arrays.items():
            np.testing.assert_array_equal(values, two.arrays[key], err_msg=f"{name}: {key}")


def test_bad_inputs_are_reasons_not_tracebacks(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    audio_only = tmp_path / "voice.m4a"
    write_audio_only(audio_only, tone_bursts(1.0))
    video_only = tmp_path / "mute.mp4"
    write_video(video_only, portrait_frames(10, size=(160, 120)))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    status = main(["label", str(corrupt), str(audio_only), str(video_only), str(empty), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    assert "corrupt.mp4: rejected: cannot open" in captured.err
    assert "voice.m4a: rejected" in captured.err and "audio-only" in captured.err
    assert "empty.mp4: rejected" in captured.err
    assert "mute.mp4: ok" in captured.out and "no audio stream" in captured.out
    metas = {read_labels(p, arrays=False).meta["source"]["file"]: read_labels(p, arrays=False).meta for p in find_labels(out)}
    assert metas["corrupt.mp4"]["status"] == "rejected" and metas["corrupt.mp4"]["reason"]
    assert metas["mute.mp4"]["status"] == "ok" and metas["mute.mp4"]["audio"]["present"] is False
    # a missing file and a bad option are user errors: one line, exit status 2
    assert main(["label", str(tmp_path / "nope.mp4"), "--out", str(out)]) == 2
    assert "error: no such video file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["label", str(video_only), "--out", str(out), "--buckets", "0"])
    assert exit_info.value.code == 2


def test_truncated_video_keeps_its_good_frames(talking_video, tmp_path):
    data = talking_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    labels = label_video(cut, tmp_path / "out")
    # either labelled with what decoded (and a warning) or rejected with a reason: never a crash
    if labels.ok:
        assert labels.meta["video"]["n_frames"] > 0
    else:
        assert labels.meta["reason"]
